"""HTTPS for the slow server: a certificate authority and a server certificate made at
start by trustme (a library made for this), or a user's own ``--cert``/``--key``.

Whoever makes ``Certificates`` removes them (``remove``, or use it as a context manager):
the runner for an experiment, the server program for ``--tls`` alone. Cost: ~10 ms to make
a CA and a certificate (ECDSA keys), a few kB on disk.
"""
from __future__ import annotations

import importlib.util
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")  # the names a certificate made here is good for
# what clients are told to trust, each the way it expects: Python's ssl (and httpx, aiohttp, Go), requests, curl
CA_ENVIRONMENT = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
HOW_TO_GET_TLS = "--tls needs trustme: pip install trustme (or give --cert and --key)"


@dataclass(frozen=True)
class Certificates:
    """PEM files in a folder of their own: ``ca`` (what a client trusts), ``cert``
    (the chain the server presents) and ``key`` (its private key)."""

    folder: Path
    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, hosts: tuple[str, ...] = LOOPBACK_NAMES) -> Certificates:
        """A fresh CA and a certificate it signed for ``hosts``; raises RuntimeError without trustme."""
        try:
            import trustme
        except ImportError:
            raise RuntimeError(HOW_TO_GET_TLS) from None
        names = tuple(dict.fromkeys(h.split("%")[0] for h in (*hosts, *LOOPBACK_NAMES) if h))
        authority = trustme.CA(organization_name="tcp-leak-harness")
        issued = authority.issue_cert(*names)
        folder = Path(tempfile.mkdtemp(prefix="harness-tls-"))
        made = cls(folder, folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
        authority.cert_pem.write_to_path(str(made.ca))
        issued.private_key_pem.write_to_path(str(made.key))
        for i, blob in enumerate(issued.cert_chain_pems):
            blob.write_to_path(str(made.cert), append=i > 0)
        return made

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        """Variables that make a command trust ``ca``: SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE."""
        return {name: str(self.ca) for name in CA_ENVIRONMENT}

    def __enter__(self) -> Certificates:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# what the server offers in ALPN: HTTP/2 first where the h2 library is installed, as real servers do
ALPN = (("h2",) if importlib.util.find_spec("h2") else ()) + ("http/1.1",)


def server_context(cert: str | Path, key: str | Path, alpn: tuple[str, ...] = ALPN) -> ssl.SSLContext:
    """The server's TLS context: ``cert`` (a PEM chain) and ``key``, TLS 1.2 or newer, ALPN ``alpn``.
    Raises OSError or ssl.SSLError for files that are missing or do not match."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(list(alpn))
    return context


def client_context(ca: str | Path | None) -> ssl.SSLContext | None:
    """A client context that trusts ``ca`` (and checks the host name); None without one."""
    return ssl.create_default_context(cafile=str(ca)) if ca else None
