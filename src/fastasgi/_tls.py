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
