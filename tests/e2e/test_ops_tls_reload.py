"""A new TLS certificate without a restart (fastasgi._tls), against the real CLI.

Two certificate authorities, "old" and "new", each issue a certificate for 127.0.0.1; the
test serves the old one, puts the new one's files in place, triggers the reload (SIGHUP in a
single process, SIGUSR1 to a supervisor, or nothing but the files changing, with watchfiles),
and then checks with real TLS clients which authority a new connection is verified by, that a
connection opened before the reload still serves requests, and that the process is the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import sys
import time

import pytest

from support.ops import serve
from support.server import HTTP_TIMEOUT
from support.supervisors import Supervised, wait_until

trustme = pytest.importorskip("trustme")

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")


@pytest.fixture
def pki(tmp_path):
    """``cert.pem``/``key.pem`` being served (old CA's), and the old and new CA files."""
    files = {}
    for name in ("old", "new"):
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(tmp_path / f"{name}-ca.pem"))
        issued.private_key_pem.write_to_path(str(tmp_path / f"{name}-key.pem"))
        chain = tmp_path / f"{name}-cert.pem"
        for index, blob in enumerate(issued.cert_chain_pems):
            blob.write_to_path(str(chain), append=index > 0)
        files[name] = chain, tmp_path / f"{name}-key.pem", tmp_path / f"{name}-ca.pem"
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(files["old"][0], served / "cert.pem")
    shutil.copy(files["old"][1], served / "key.pem")
    return {"dir": served, "old": files["old"], "new": files["new"]}


def tls_args(pki) -> list[str]:
    return ["--ssl-certfile", str(pki["dir"] / "cert.pem"), "--ssl-keyfile", str(pki["dir"] / "key.pem")]


def install(pki, name: str) -> None:
    """Put a certificate and its key in place the way deploys do: write new files, rename
    them over the served ones."""
    cert, key, _ = pki[name]
    for source, target in ((key, "key.pem"), (cert, "cert.pem")):
        temporary = pki["dir"] / f".{target}.tmp"
        shutil.copy(source, temporary)
        os.replace(temporary, pki["dir"] / target)


def break_certificate(pki) -> None:
    temporary = pki["dir"] / ".cert.pem.tmp"
    temporary.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    os.replace(temporary, pki["dir"] / "cert.pem")


class TlsConnection:
    """One kept-alive TLS connection verified against one CA."""

    def __init__(self, port: int, ca) -> None:
        context = ssl.create_default_context(cafile=str(ca))
        raw = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")

    def get(self) -> bytes:
        self.sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"ok"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {answer!r}")
            answer += chunk
        return answer.split(b"\r\n", 1)[0]

    def close(self) -> None:
        self.sock.close()


def verified_by(port: int, pki) -> str:
    """Which CA ("old" or "new") a new connection's certificate is verified by."""
    for name in ("old", "new"):
        try:
            connection = TlsConnection(port, pki[name][2])
        except ssl.SSLCertVerificationError:
            continue
        try:
            assert connection.get() == b"HTTP/1.1 200 OK"
        finally:
            connection.close()
        return name
    raise AssertionError("verified by neither CA")


def test_sighup_reloads_the_certificate_without_dropping_connections(pki):
    with serve(*tls_args(pki)) as server:
        pid = server.pid
        assert verified_by(server.port, pki) == "old"
        kept = TlsConnection(server.port, pki["old"][2])
        assert kept.get() == b"HTTP/1.1 200 OK"

        install(pki, "new")
        mark = server.log_mark()
        server.send_signal(signal.SIGHUP)
        server.wait_log(mark, "Received SIGHUP: TLS certificate reloaded from")
        assert verified_by(server.port, pki) == "new"
        # The connection from before the reload goes on, on the old session.
        assert kept.get() == b"HTTP/1.1 200 OK"
        kept.close()
        assert server.pid == pid and server.alive


def test_a_broken_certificate_keeps_the_previous_one(pki):
    with serve(*tls_args(pki)) as server:
        kept = TlsConnection(server.port, pki["old"][2])
        break_certificate(pki)
        mark = server.log_mark()
        server.send_signal(signal.SIGUSR1)
        logged = server.wait_log(mark, "TLS certificate reload failed")
        assert "Received SIGUSR1: TLS certificate reload failed, still serving the previous one." in logged
        assert "--ssl-certfile" in logged
        assert verified_by(server.port, pki) == "old"
        assert kept.get() == b"HTTP/1.1 200 OK"
        kept.close()

        install(pki, "new")  # fixed: the next reload takes it
        mark = server.log_mark()
        server.send_signal(signal.SIGHUP)
        server.wait_log(mark, "TLS certificate reloaded")
        assert verified_by(server.port, pki) == "new"


def test_a_key_that_does_not_match_keeps_the_previous_certificate(pki):
    with serve(*tls_args(pki)) as server:
        shutil.copy(pki["new"][0], pki["dir"] / "cert.pem")  # the new certificate, the old key
        mark = server.log_mark()
        server.send_signal(signal.SIGHUP)
        server.wait_log(mark, "TLS certificate reload failed")
        assert verified_by(server.port, pki) == "old"


def test_changed_files_are_reloaded_by_themselves(pki):
    pytest.importorskip("watchfiles")
    with serve(*tls_args(pki)) as server:
        assert verified_by(server.port, pki) == "old"
        time.sleep(0.5)  # the watch starts once the server serves
        mark = server.log_mark()
        install(pki, "new")
        server.wait_log(mark, "The certificate files changed: TLS certificate reloaded", timeout=15)
        assert verified_by(server.port, pki) == "new"


def test_sigusr1_reloads_every_worker_in_place(pki):
    with Supervised.cli("ops_app:app", "--port", "0", "--workers", "2", *tls_args(pki)) as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        assert verified_by(port, pki) == "old"
        install(pki, "new")
        mark = server.log_mark()
        server.send_signal(signal.SIGUSR1)
        wait_until(
            lambda: server.log_since(mark).count("Received SIGUSR1: TLS certificate reloaded") == 2,
            15,
            "both workers to reload",
        )
        assert "Received SIGUSR1, reloading the TLS certificate in 2 process(es)." in server.log_since(mark)
        for _ in range(6):  # whichever worker takes the connection
            assert verified_by(port, pki) == "new"
        assert server.children() == workers  # nobody was restarted
        assert server.stop() == 0


def test_sighup_with_a_broken_certificate_aborts_the_rolling_restart(pki):
    with Supervised.cli("ops_app:app", "--port", "0", "--workers", "2", *tls_args(pki)) as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        break_certificate(pki)
        mark = server.log_mark()
        server.send_signal(signal.SIGHUP)
        server.wait_log(
            mark, "before it was ready; keeping the old workers and aborting the restart", timeout=20
        )
        assert "cannot load the certificate and its key" in server.log_since(mark)
        assert verified_by(port, pki) == "old"
        assert server.children() == workers
        assert server.stop() == 0
