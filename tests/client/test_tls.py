"""``stepd_client`` over TLS: a real ``stepd serve`` with a certificate of a test CA
(trustme), and a proxy in front of stepd that requires client certificates, as an
ingress doing mutual TLS would."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from stepd_client import (
    AsyncStepdClient,
    DeleteStep,
    RetryPolicy,
    StepdClient,
    StepdConnectionError,
    TLSError,
)

from tests.support.proxy import ConnectionCounter, ReverseProxy
from tests.support.server import Server

# Retries that would show: three more connections, if a TLS failure were retried.
RETRYING = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="module")
def mutual_tls(ca: trustme.CA, live_server: str) -> Iterator[ReverseProxy]:
    """HTTPS in front of the plain live server, refusing clients without a cert of ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with ReverseProxy(live_server, tls=context) as proxy:
        yield proxy


def test_verify_with_a_ca_file(https: Server, ca_file: Path) -> None:
    with StepdClient(https.url(scheme="https"), verify=ca_file) as client:
        assert client.delete("gone").absent == ["gone"]


def test_verify_with_a_context(https: Server, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with StepdClient(https.url(scheme="https"), verify=context) as client:
        result = client.batch([DeleteStep("gone")])
    assert result.steps[0].absent == ["gone"]


@pytest.mark.anyio
async def test_async_client_verifies_too(https: Server, ca_file: Path) -> None:
    async with AsyncStepdClient(https.url(scheme="https"), verify=ca_file) as client:
        assert (await client.delete("gone")).absent == ["gone"]


def test_an_untrusted_certificate_fails_at_once_and_says_what_to_pass(
    https: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        ConnectionCounter(https.port) as relay,
        StepdClient(relay.url(), retry=RETRYING) as client,
        pytest.raises(TLSError) as raised,
    ):
        client.delete("gone")
    assert relay.connections == 1
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert "verify=" in str(raised.value)
    assert raised.value.request_id
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_https_to_a_plain_http_server_fails_at_once(live_server: str) -> None:
    port = int(live_server.rsplit(":", 1)[1])
    with (
        ConnectionCounter(port) as relay,
        StepdClient(relay.url(), retry=RETRYING) as client,
        pytest.raises(TLSError),
    ):
        client.delete("gone")
    assert relay.connections == 1


def test_a_client_certificate_is_presented(
    mutual_tls: ReverseProxy, ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    identity = ca.issue_cert("kargo.example")
    identity.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    identity.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    identity.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    for cert in (tmp_path / "client.pem", (tmp_path / "client.crt", tmp_path / "client.key")):
        with StepdClient(mutual_tls.url, verify=ca_file, cert=cert) as client:
            assert client.delete("gone").absent == ["gone"]


def test_without_a_client_certificate_mutual_tls_refuses_at_once(
    mutual_tls: ReverseProxy, ca_file: Path
) -> None:
    before = len(mutual_tls.seen)
    with (
        StepdClient(mutual_tls.url, verify=ca_file, retry=RETRYING) as client,
        pytest.raises(StepdConnectionError) as raised,
    ):
        client.delete("gone")
    assert isinstance(raised.value, TLSError)
    assert len(mutual_tls.seen) == before


def test_a_context_and_a_client_certificate_do_not_mix(ca_file: Path) -> None:
    with pytest.raises(ValueError, match="load the client certificate"):
        StepdClient("https://stepd.example", verify=ssl.create_default_context(), cert=ca_file)
