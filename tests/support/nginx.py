"""Debian's nginx as a reverse proxy in front of the server under test.

``start_nginx(directory, upstream)`` writes a configuration into ``directory`` and runs nginx
in the foreground (``daemon off``) with everything it writes (pid file, error log, temporary
files) in that directory, on a free loopback port. The configuration is what a production
deployment in front of an ASGI server looks like:

- upstream keep-alive (``keepalive``, HTTP/1.1, an empty Connection header);
- websockets passed through with Upgrade/Connection;
- X-Forwarded-For / X-Forwarded-Proto / Host set for the app (``/tls-terminated/`` sends
  ``X-Forwarded-Proto: https``, as a location behind a TLS listener would);
- ``proxy_next_upstream error timeout`` (nginx's default, written out): a request whose
  upstream connection fails before a response began is tried again. Only idempotent
  requests are, since nginx 1.9.13. The upstream's one address is listed three times so that
  nginx has tries left (with one server it has one try), and ``max_fails=0`` so that a
  failure does not take the address out of rotation.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from support.server import ServerProcess, free_port, wait_for_port

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(path)), None
)
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx; .ci/run installs it)"
)

CONFIG = """\
daemon off;
worker_processes 1;
{user}
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;

    upstream app {{
        server {upstream} max_fails=0;
        server {upstream} max_fails=0;
        server {upstream} max_fails=0;
        keepalive 16;
    }}

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      '';
    }}

    server {{
        listen 127.0.0.1:{port};

        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        # (one set of proxy_set_header for every location: a location that had one of its
        # own would inherit none of these)
        set $forwarded_proto $scheme;
        proxy_set_header X-Forwarded-Proto $forwarded_proto;
        proxy_next_upstream error timeout;
        proxy_read_timeout 30s;
        proxy_buffering off;

        location / {{
            proxy_pass http://app;
        }}
        location /tls-terminated/ {{
            set $forwarded_proto https;
            proxy_pass http://app/;
        }}
    }}
}}
"""


def start_nginx(directory: Path, upstream: str) -> tuple[ServerProcess, int]:
    """nginx in front of ``upstream`` (``127.0.0.1:PORT`` or ``unix:PATH``); returns the
    process and the port it listens on. A port taken between ``free_port`` and nginx's bind
    makes nginx exit: tried again on another."""
    assert NGINX is not None
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    # As root, nginx's worker would switch to "nobody", who cannot reach the test's files.
    user = "user root;" if os.geteuid() == 0 else ""
    proxy = None
    for _ in range(3):
        port = free_port()
        config.write_text(CONFIG.format(directory=directory, upstream=upstream, port=port, user=user))
        check = ServerProcess([NGINX, "-t", "-p", str(directory), "-c", str(config), "-e", "stderr"])
        assert check.wait_exit(15) == 0, check.stderr
        check.close()
        proxy = ServerProcess([NGINX, "-p", str(directory), "-c", str(config), "-e", "stderr"])
        try:
            wait_for_port(port)
            time.sleep(0.05)
        except AssertionError:
            pass
        if proxy.alive():
            return proxy, port
        proxy.close()
    raise AssertionError(f"nginx did not start:\n{proxy.stderr if proxy else ''}")
