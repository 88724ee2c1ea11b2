"""The TLS context a client's own httpx client uses, from ``verify=`` and ``cert=``."""

from __future__ import annotations

import os
import ssl

import httpx

# A PEM file with the certificate and its key, or (certificate, key), or
# (certificate, key, password of the key).
ClientCert = (
    str
    | os.PathLike[str]
    | tuple[str | os.PathLike[str], str | os.PathLike[str]]
    | tuple[str | os.PathLike[str], str | os.PathLike[str], str]
)
# True: the system's trust (httpx's default, certifi); False: no verification; a path:
# a CA bundle file or directory to trust instead; or a whole context of the caller's.
Verify = bool | str | os.PathLike[str] | ssl.SSLContext


def ssl_context(verify: Verify, cert: ClientCert | None) -> ssl.SSLContext:
    """The context that verifies the server as ``verify`` says and presents ``cert``."""
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise ValueError("with verify=<SSLContext>, load the client certificate into it")
        return verify
    if verify is True or verify is False:
        context = httpx.create_ssl_context(verify=verify)
    elif os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    else:
        context = ssl.create_default_context(cafile=verify)
    if cert is not None:
        if isinstance(cert, tuple):
            context.load_cert_chain(*cert)
        else:
            context.load_cert_chain(cert)
    return context
