"""A new TLS certificate without a restart.

The listening sockets were handed their ``SSLContext`` when they started serving, and
asyncio gives no way to change it. So the reload happens one handshake at a time: the
served context gets a server-name callback (OpenSSL calls it for every ClientHello, with or
without SNI), and the callback switches the new connection to the newest context. A context
is built from the files exactly as at startup (``Config.create_ssl_context``: certificate,
key, password, client CAs, ciphers, ALPN, or ``ssl_context_factory``), so a reload takes
whatever the files say now. Connections already open keep the session they negotiated;
nothing is dropped, no process restarts.

A new certificate that cannot be loaded (unreadable, not PEM, a key that does not match)
leaves the previous context in place and logs an error: a broken deploy of a certificate
must not take the server down.

What triggers a reload (``fastasgi.server``): SIGHUP in a single server process, SIGUSR1 in
any serving process (a ``--workers`` supervisor forwards it to each worker), and, when
watchfiles is installed, a change of the files themselves. The directories holding them are
watched, not the files: a certificate is usually replaced by renaming a new file over it,
or, on Kubernetes, by swapping the ``..data`` symbolic link of a mounted secret, and a watch
on the old file would never see either.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from typing import Any

from fastasgi.config import Config, ConfigError

logger = logging.getLogger("fastasgi.error")


class CertificateReloader:
    """Serves every new TLS connection with the newest context that loaded."""

    def __init__(self, config: Config, context: ssl.SSLContext) -> None:
        self.config = config
        #: the context the listeners serve with; its callback picks ``current``
        self.served = context
        #: the newest context that loaded
        self.current = context
        #: False when ``ssl_context_factory`` installed a server-name callback of its own:
        #: replacing it would break what it does, so the certificate cannot be reloaded
        self.supported = context.sni_callback is None
        if self.supported:
            context.sni_callback = self._select
        self._digest = self._files_digest()
        self._stop: asyncio.Event | None = None
        #: builds scope["extensions"]["tls"] for each connection (below)
        self.extension = TLSExtension(config)

    def _select(self, sslobj: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self.current
        if current is not context:
            sslobj.context = current

    def files(self) -> list[str]:
        """The files the context is built from."""
        config = self.config
        names = (config.ssl_certfile, config.ssl_keyfile, config.ssl_ca_certs)
        return [os.path.abspath(os.fspath(name)) for name in names if name]

    def _files_digest(self) -> bytes:
        digest = hashlib.sha256()
        for name in self.files():
            try:
                with open(name, "rb") as file:
                    digest.update(file.read())
            except OSError as exc:
                digest.update(repr(exc).encode())
        return digest.digest()

    def reload(self, why: str) -> bool:
        """Build a context from the files as they are now and serve new connections with
        it. On failure the previous context stays, and the error is logged. Returns whether
        it loaded."""
        if not self.supported:
            logger.warning(
                "%s: cannot reload the TLS certificate, ssl_context_factory set a server-name callback.", why
            )
            return False
        self._digest = self._files_digest()
        try:
            context = self.config.create_ssl_context()
        except ConfigError as exc:
            logger.error("%s: TLS certificate reload failed, still serving the previous one. %s", why, exc)
            return False
        if context is None:  # the settings cannot change while serving; this is defensive
            return False
        self.current = context
        self.extension.refresh()
        logger.info(
            "%s: TLS certificate reloaded from %s.", why, os.fspath(self.config.ssl_certfile or "the factory")
        )
        return True

    async def watch(self) -> None:
        """Reload when the certificate files change; returns at once when watchfiles is not
        installed, and when ``stop()`` is called."""
        try:
            import watchfiles
        except ImportError:
            return
        files = self.files()
        if not files:
            return
        self._stop = asyncio.Event()
        directories = sorted({os.path.dirname(name) for name in files})
        logger.debug("Watching %s for new TLS certificates.", ", ".join(directories))
        async for _ in watchfiles.awatch(*directories, stop_event=self._stop, recursive=False):
            # Any change in the directories wakes this; only new contents reload (and a
            # content that failed once is not tried again until it changes).
            if self._files_digest() != self._digest:
                self.reload("The certificate files changed")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()


# --- the ASGI "TLS" scope extension -----------------------------------------------------------
#
# scope["extensions"]["tls"] (the ASGI TLS extension): server_cert (PEM of the certificate
# the server presented), client_cert_chain (PEM, the client's certificate first),
# client_cert_name (its subject as an RFC 4514 string), client_cert_error (why it was not
# verified, or None), tls_version (the protocol's 16-bit code, e.g. 0x0304 for TLS 1.3) and
# cipher_suite (the IANA code). Built once per connection (the core calls it from
# connection_made); every scope of the connection shares the dict.

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# RFC 4514 2.3: the short names of the attribute types it defines; others as dotted OIDs are
# what OpenSSL would print, but Python's getpeercert gives long names for those, kept as they
# are
_RFC4514_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _rfc4514_escape(value: str) -> str:
    """RFC 4514 2.4: escape the special characters of an attribute value."""
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def rfc4514_name(subject: tuple) -> str:
    """The distinguished name of a getpeercert() subject as RFC 4514 writes it: the RDNs in
    reverse order (2.1), multi-valued RDNs joined with "+" (2.2)."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_RFC4514_NAMES.get(k, k)}={_rfc4514_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _first_pem(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end_marker = "-----END CERTIFICATE-----"
    end = text.find(end_marker, begin)
    if begin < 0 or end < 0:
        return None
    return text[begin : end + len(end_marker)] + "\n"


class TLSExtension:
    """ssl_object -> the tls extension of its connection. ``server_cert`` is read from
    --ssl-certfile (the first certificate of the file), again after a certificate reload
    (``refresh``); with an ``ssl_context_factory`` and no certificate file it is None."""

    def __init__(self, config: Config) -> None:
        self._certfile = os.fspath(config.ssl_certfile) if config.ssl_certfile else None
        self.server_cert: str | None = None
        self._cipher_codes: dict[str, int] = {}
        self.refresh()

    def refresh(self) -> None:
        self.server_cert = _first_pem(self._certfile) if self._certfile else None

    def _cipher_code(self, ssl_object: Any, name: str) -> int | None:
        code = self._cipher_codes.get(name)
        if code is None:
            # OpenSSL's cipher ids carry the IANA code in their low 16 bits (0x0300XXXX)
            for entry in ssl_object.context.get_ciphers():
                self._cipher_codes.setdefault(entry["name"], entry["id"] & 0xFFFF)
            code = self._cipher_codes.get(name)
        return code

    def __call__(self, ssl_object: Any) -> dict[str, Any]:
        cipher = ssl_object.cipher()
        chain: list[str] = []
        name = error = None
        der = ssl_object.getpeercert(binary_form=True)
        if der:
            # what the client sent, its certificate first (Python 3.13+; before, the leaf)
            sent = getattr(ssl_object, "get_unverified_chain", None)
            if sent is not None:
                chain = [str(cert.public_bytes()) for cert in sent() or ()]
            if not chain:
                chain = [ssl.DER_cert_to_PEM_cert(der)]
            subject = (ssl_object.getpeercert() or {}).get("subject")
            if subject:
                name = rfc4514_name(subject)
            else:
                # not verified (--ssl-cert-reqs 1 without a CA that signed it): getpeercert
                # gives no fields for an unverified certificate
                error = "the client certificate was not verified"
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": error,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": self._cipher_code(ssl_object, cipher[0]) if cipher else None,
        }
