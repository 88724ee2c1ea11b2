"""HTTPS: ``stepd serve`` with a certificate and key speaks TLS, verified by the client."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
import trustme

from app.cli import main
from tests.support.server import Server


def test_https_is_served_with_the_given_certificate(https: Server, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(verify=context) as client:
        response = client.post(https.url("/steps/delete", "https"), json={"path": "gone"})
    assert response.status_code == 200
    assert response.json()["absent"] == ["gone"]


def test_a_client_that_does_not_trust_the_certificate_is_refused(https: Server) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https.url("/healthz", "https"), verify=ssl.create_default_context())


def test_plain_http_gets_no_answer(https: Server) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(https.url("/healthz"))


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"--tls-cert-file": "not PEM"},
            "stepd: TLS needs both a certificate file and a key file: STEPD_TLS_CERT_FILE / "
            "--tls-cert-file is set, STEPD_TLS_KEY_FILE / --tls-key-file is not",
        ),
        (
            {"--tls-cert-file": "not PEM", "--tls-key-file": None},
            "stepd: cannot read '{--tls-key-file}' (STEPD_TLS_KEY_FILE / --tls-key-file): "
            "No such file or directory",
        ),
        (
            {"--tls-cert-file": "not PEM", "--tls-key-file": "not PEM"},
            "stepd: cannot load TLS certificate '{--tls-cert-file}' (STEPD_TLS_CERT_FILE / "
            "--tls-cert-file) with key '{--tls-key-file}' (STEPD_TLS_KEY_FILE / --tls-key-file)",
        ),
    ],
    ids=["cert-without-key", "missing-key", "unusable-cert"],
)
def test_tls_that_cannot_work_refuses_to_start_naming_the_file(
    root_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str | None],
    reason: str,
) -> None:
    argv = ["serve", "--workspace-root", str(root_dir)]
    for option, content in files.items():
        path = tmp_path / option.strip("-")
        if content is not None:
            path.write_text(content)
        argv += [option, str(path)]
        reason = reason.replace("{" + option + "}", str(path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(reason)
    assert err.count("\n") == 1
