"""Who may be served: loopback without tokens, anything else only with tokens or consent."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.cli import main
from app.settings import Settings, check_exposure, is_loopback
from tests.support.server import serve


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LocalHost"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "stepd.example"])
def test_hosts_that_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_non_loopback_host_without_tokens_refuses_to_start(
    root_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--workspace-root", str(root_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "stepd: refusing to serve '0.0.0.0' (STEPD_HOST / --host) without authentication: "
        "set STEPD_AUTH_TOKENS_FILE / --auth-tokens-file"
    )
    assert "STEPD_ALLOW_UNAUTHENTICATED=true" in err
    assert err.count("\n") == 1


def test_a_non_loopback_host_with_tokens_needs_no_permission(tmp_path: Path) -> None:
    settings = Settings(host="0.0.0.0", auth_tokens_file=tmp_path / "tokens")
    assert check_exposure(settings) is None


def test_allowing_unauthenticated_serves_and_warns(root_dir: Path) -> None:
    env = {"STEPD_ALLOW_UNAUTHENTICATED": "true"}
    with serve(root_dir, env=env, host="0.0.0.0") as server:
        assert httpx.get(server.url("/healthz")).status_code == 200
        assert "serving '0.0.0.0' without authentication" in server.output()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "stepd: cannot read token file '{}' (STEPD_AUTH_TOKENS_FILE"),
        ("# nobody yet\n\n", "stepd: token file '{}' (STEPD_AUTH_TOKENS_FILE / "),
        ("ci:good-token\nnot a token\n", "token file '{}' (STEPD_AUTH_TOKENS_FILE / "),
        ("ci:good-token\nnot a token\n", "--auth-tokens-file): line 2: not a bearer token"),
        ("c i:good-token\n", "'{}' (STEPD_AUTH_TOKENS_FILE / --auth-tokens-file): line 1: the"),
        (b"good-token\xff\n", "not UTF-8 text"),
    ],
    ids=["missing", "empty", "bad-token-file", "bad-token-line", "bad-name", "not-utf8"],
)
def test_an_unusable_token_file_refuses_to_start(
    root_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes | None,
    reason: str,
) -> None:
    tokens = tmp_path / "tokens"
    if isinstance(content, str):
        tokens.write_text(content)
    elif content is not None:
        tokens.write_bytes(content)
    monkeypatch.setenv("STEPD_AUTH_TOKENS_FILE", str(tokens))
    assert main(["serve", "--workspace-root", str(root_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stepd: ")
    assert reason.replace("{}", str(tokens)) in err
    assert err.count("\n") == 1
    assert "good-token" not in err
