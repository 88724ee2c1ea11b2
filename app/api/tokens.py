"""Bearer tokens read from a file that may change under us (a Kubernetes Secret mount).

The file holds one token per line; blank lines and lines starting with ``#`` are ignored.
A line ``name:token`` names the caller; a bare token's caller is ``sha256:<12 hex digits>``
of the token, stable and not secret. Tokens follow RFC 6750's ``b64token`` syntax, so they
hold no ``:``. Several lines may share a name: that is how a token is rotated without
the caller changing identity.

A Kargo step plugin's token file is read the same way with another parser
(``parse_agent_token``): its whole content, surrounding whitespace stripped, is the one
token.

Only SHA-256 digests of the tokens are kept. Nothing here ever logs a token: parse errors
name the line number only.

The file is checked with one ``stat`` at most every ``RECHECK_SECONDS`` (path followed,
so a Secret's atomic ``..data`` symlink swap shows up as a new inode) and re-read when
device, inode, size or mtime changed: a change is in force within that interval. A file
modified within the last ``RACY_SECONDS`` is re-read at every check, since a same-size
rewrite within one timestamp tick would otherwise go unseen.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.settings import ConfigError, knob

log = logging.getLogger(__name__)

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RACY_SECONDS = 2
# How long the file is taken as unchanged after a look: one stat a second, not one per
# request (a stat on the event loop lets the step threads take the interpreter lock).
RECHECK_SECONDS = 1.0
# The caller a Kargo step plugin's token identifies.
KARGO_AGENT = "kargo-agent"


class TokenFileError(ConfigError):
    """The token file cannot be read or parsed; the message never holds a token."""


@dataclass(frozen=True)
class Credential:
    """One accepted token, as its SHA-256 digest, and the caller it identifies."""

    digest: bytes
    caller: str


def digest(token: str) -> bytes:
    """The SHA-256 digest tokens are kept and compared as."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse(text: str) -> tuple[Credential, ...]:
    """The credentials in a token file's text; ``TokenFileError`` naming a bad line."""
    credentials: list[Credential] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.rpartition(":")
        if colon and not NAME_PATTERN.fullmatch(name):
            raise TokenFileError(f"line {number}: the name must match {NAME_PATTERN.pattern}")
        if not TOKEN_PATTERN.fullmatch(token):
            raise TokenFileError(f"line {number}: not a bearer token (RFC 6750 b64token)")
        token_digest = digest(token)
        credentials.append(Credential(token_digest, name or "sha256:" + token_digest.hex()[:12]))
    return tuple(credentials)


def parse_agent_token(text: str) -> tuple[Credential, ...]:
    """The one credential of a Kargo step plugin's token file: its whole content, stripped
    (the agent sends exactly that); none when the file is blank."""
    token = text.strip()
    return (Credential(digest(token), KARGO_AGENT),) if token else ()


class TokenFile:
    """The tokens of ``path``, re-read when the file changes; see the module docstring."""

    def __init__(self, path: Path, parse: Callable[[str], tuple[Credential, ...]] = parse) -> None:
        """Load ``path`` now, with ``parse``; ``TokenFileError`` if it is unreadable,
        invalid or empty."""
        self.path = path
        self._parse = parse
        self._signature: tuple[int, ...] | None = None
        self._problem: str | None = None
        self._fresh_until = 0.0  # monotonic time until which the file is not looked at
        named = f"token file {str(path)!r} ({knob('auth_tokens_file')})"
        try:
            st = os.stat(path)
            self._credentials = parse(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"cannot read {named}: {_reason(exc)}") from None
        except TokenFileError as exc:
            raise TokenFileError(f"{named}: {exc}") from None
        if not self._credentials:
            raise TokenFileError(f"{named} holds no tokens")
        self._remember(st)

    def match(self, token: str) -> str | None:
        """The caller ``token`` identifies, or None.

        Compares in constant time against every token, with no early exit, so neither
        timing nor the order of the file tells which token came close.
        """
        given = digest(token)
        caller: str | None = None
        for credential in self.credentials():
            if hmac.compare_digest(credential.digest, given) and caller is None:
                caller = credential.caller
        return caller

    def credentials(self) -> tuple[Credential, ...]:
        """The current credentials, re-reading the file first if it changed (looked at
        once per ``RECHECK_SECONDS``).

        When the file cannot be read or parsed, the last good credentials stay in force;
        when it parses to no tokens, every request is refused.
        """
        now = time.monotonic()
        if now < self._fresh_until:
            return self._credentials
        self._fresh_until = now + RECHECK_SECONDS
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._warn(_reason(exc))
            return self._credentials
        if _signature(st) == self._signature:
            return self._credentials
        try:
            credentials = self._parse(self.path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, TokenFileError) as exc:
            self._warn(_reason(exc))
        else:
            if credentials != self._credentials:
                log.info("token file %s: %d tokens now", self.path, len(credentials))
                if not credentials:
                    log.warning("token file %s holds no tokens: refusing every call", self.path)
            self._credentials = credentials
            self._problem = None
        self._remember(st)
        return self._credentials

    def _warn(self, problem: str) -> None:
        # Once per distinct problem: the file is looked at every second.
        if problem != self._problem:
            log.warning(
                "token file %s: %s; keeping the %d tokens loaded before",
                self.path,
                problem,
                len(self._credentials),
            )
        self._problem = problem

    def _remember(self, st: os.stat_result) -> None:
        racy = time.time_ns() - st.st_mtime_ns < RACY_SECONDS * 1_000_000_000
        self._signature = None if racy else _signature(st)


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _reason(exc: Exception) -> str:
    """Why reading failed, without the file's content (a decode error would quote it)."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)
