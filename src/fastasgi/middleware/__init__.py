"""ASGI middleware the server puts around the application (see ``Config.load``)."""

from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware, TrustedProxies

__all__ = ["ProxyHeadersMiddleware", "TrustedProxies"]
