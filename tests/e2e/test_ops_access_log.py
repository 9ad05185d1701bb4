"""The access log, line by line: uvicorn's default line, --access-log-format atoms, escaping
of control characters, and the same lines through logging when --log-config takes over."""

from __future__ import annotations

import http
import json
import logging
import os
import re
import signal
import sys
import time

import pytest

from fastasgi._accesslog import _line_format, _uvicorn_args, compile_access_format, escape, make_access_log
from fastasgi.logging import ACCESS_LOG_FORMAT, DEFAULT_ACCESS_FMT, AccessFormatter
from support.ops import APP, connect, serve
from support.server import HTTP_TIMEOUT, run_cli

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")

TOO_LARGE = http.HTTPStatus(413).phrase  # "Content Too Large" from Python 3.13 on


def exchange(server, request: bytes) -> tuple[int, int]:
    """Send one raw request on a new connection; (status, client port)."""
    sock = connect(server)
    port = sock.local_port
    sock.send(request)
    status = sock.read_response().status
    sock.close()
    return status, port


def access_lines(server, count: int, timeout: float = HTTP_TIMEOUT) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(server.stdout_lines) < count:
        assert time.monotonic() < deadline, f"{len(server.stdout_lines)} of {count} lines: {server.stdout()}"
        time.sleep(0.02)
    return list(server.stdout_lines)


# --- the default line ------------------------------------------------------------------------


def test_default_line_is_uvicorns():
    with serve() as server:
        _, port1 = exchange(server, b"GET /a%20b?x=1&y=%22 HTTP/1.1\r\nHost: x\r\n\r\n")
        _, port2 = exchange(server, b"POST /body HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc")
        _, port3 = exchange(server, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n")
        lines = access_lines(server, 3)
    assert lines == [
        f'INFO:     127.0.0.1:{port1} - "GET /a%20b?x=1&y=%22 HTTP/1.1" 200 OK',
        f'INFO:     127.0.0.1:{port2} - "POST /body HTTP/1.0" 200 OK',
        f'INFO:     127.0.0.1:{port3} - "GET /nowhere HTTP/1.1" 200 OK',
    ]


def test_server_generated_responses_are_logged():
    # A body over --limit-request-body (found while it streams) and a request beyond
    # --limit-concurrency get their line like any other.
    with serve("--limit-request-body", "10", "--limit-concurrency", "1") as server:
        chunked = b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n"
        status, port1 = exchange(server, chunked)
        assert status == 413
        slow = connect(server)
        slow.send(b"GET /slow?s=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        server.wait_for("slow started")
        status, port2 = exchange(server, b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503
        assert slow.read_response().status == 200
        slow_port = slow.local_port
        slow.close()
        lines = access_lines(server, 3)
    assert lines[:2] == [
        f'INFO:     127.0.0.1:{port1} - "POST /body HTTP/1.1" 413 {TOO_LARGE}',
        f'INFO:     127.0.0.1:{port2} - "GET /busy HTTP/1.1" 503 Service Unavailable',
    ]
    assert lines[2] == f'INFO:     127.0.0.1:{slow_port} - "GET /slow?s=1 HTTP/1.1" 200 OK'


def test_requests_refused_before_their_head_is_complete_are_logged():
    # Refused from the head alone: no scope was ever built, the line shows what was parsed.
    with serve("--limit-request-body", "10") as server:
        status, port1 = exchange(server, b"POST /big?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        assert status == 413
        status, port2 = exchange(server, b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 400
        status, port3 = exchange(server, b"GET /v HTTP/2.0\r\nHost: x\r\n\r\n")
        assert status == 505
        lines = access_lines(server, 3)
    assert lines == [
        f'INFO:     127.0.0.1:{port1} - "POST /big?q=1 HTTP/1.1" 413 {TOO_LARGE}',
        f'INFO:     127.0.0.1:{port2} - "- - HTTP/1.1" 400 Bad Request',
        f'INFO:     127.0.0.1:{port3} - "GET /v HTTP/2.0" 505 HTTP Version Not Supported',
    ]


def test_quotes_backslashes_and_control_characters_are_escaped():
    # llhttp refuses control characters in the request target; '"' and '\' pass, and
    # --root-path is the server's own text: all come out escaped, nginx style.
    with serve("--root-path", "/r\x1b[31m\n") as server:
        _, port = exchange(server, b'GET /a"b\\c HTTP/1.1\r\nHost: x\r\n\r\n')
        line = access_lines(server, 1)[0]
    assert line == f'INFO:     127.0.0.1:{port} - "GET /r\\x1b[31m\\x0a/a\\x22b\\x5cc HTTP/1.1" 200 OK'


def test_access_line_is_written_before_exit():
    with serve() as server:
        sock = connect(server)
        sock.send(b"GET /last HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.read_response().status == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit() == 0
        sock.close()
    assert len(server.stdout_lines) == 1 and '"GET /last HTTP/1.1" 200 OK' in server.stdout_lines[0]


def test_no_access_log_writes_nothing():
    with serve("--no-access-log") as server:
        assert exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
        assert server.stop() == 0
    assert server.stdout() == ""


def test_log_level_warning_writes_no_access_lines():
    with serve("--log-level", "warning", started=False) as server:
        server.port = _wait_for_any_port(server)  # no "running on" line at this level
        assert exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
        assert server.stop() == 0
    assert server.stdout() == "" and "INFO" not in server.stderr


# --- --access-log-format ---------------------------------------------------------------------

CUSTOM = (
    '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%({x-request-id}i)s" "%(a)s" "%(f)s" '
    "%(m)s %(U)s %(q)s %(H)s [%(status_code)s] %(client_addr)s %(p)s %%"
)


def test_custom_format_atoms():
    with serve("--access-log-format", CUSTOM) as server:
        pid = int(server.wait_for(r"ops_app pid=(\d+)").group(1))
        _, port1 = exchange(
            server,
            b'GET /bytes?n=1234 HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc-1\r\nUser-Agent: t/1 "q"\t\xe9\r\n'
            b"Referer: http://r.example/\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n",
        )
        _, port2 = exchange(server, b"HEAD /bytes HTTP/1.0\r\n\r\n")
        lines = access_lines(server, 2)
    assert lines == [
        '127.0.0.1 - user "GET /bytes?n=1234 HTTP/1.1" 200 1234 1234 "abc-1" "t/1 \\x22q\\x22\\x09\\xe9" '
        f'"http://r.example/" GET /bytes n=1234 HTTP/1.1 [200 OK] 127.0.0.1:{port1} <{pid}> %',
        f'127.0.0.1 - - "HEAD /bytes HTTP/1.0" 200 - 0 "-" "-" "-" HEAD /bytes  HTTP/1.0 [200 OK] 127.0.0.1:{port2} <{pid}> %',
    ]


def test_duration_and_time_atoms():
    with serve("--access-log-format", "%(t)s %(M)s %(D)s %(L)s %(T)s") as server:
        before = time.time()
        exchange(server, b"GET /slow?s=0.25 HTTP/1.1\r\nHost: x\r\n\r\n")
        line = access_lines(server, 1)[0]
    match = re.fullmatch(
        r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] (\d+) (\d+) (\d+\.\d{6}) (\d+)", line
    )
    assert match, line
    stamp = time.mktime(time.strptime(match.group(1), "%d/%b/%Y:%H:%M:%S %z"))
    assert before - 2 <= stamp <= time.time() + 2
    ms, us, seconds, whole = (
        int(match.group(2)),
        int(match.group(3)),
        float(match.group(4)),
        int(match.group(5)),
    )
    # the loop may wake a timer a clock tick early; time.time() and the loop clock differ
    assert 200 <= ms < 2000 and ms == us // 1000 and abs(seconds - us / 1e6) < 1e-5 and whole == int(seconds)


def test_bad_access_log_format_is_one_line():
    for fmt, reason in [
        ("%(nope)s", "'%(nope)s' has an unknown atom %(nope)s."),
        (
            "100%",
            "'100%' has a '%' at position 3 that starts no atom; write atoms as %(h)s and a percent sign as %%.",
        ),
        ("%({bad header}i)s", "'%({bad header}i)s': %({bad header}i)s does not name a header."),
    ]:
        result = run_cli(APP, "--access-log-format", fmt)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            f"Error: Invalid value for '--access-log-format': {reason}"
        ]


# --- through logging, when a log config takes over ----------------------------------------------

_DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "FILE", "formatter": "plain"}},
    "loggers": {"fastasgi.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
}

_INI_CONFIG = """
[loggers]
keys=root,access

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_access]
level=INFO
handlers=file
qualname=fastasgi.access
propagate=0

[handler_file]
class=FileHandler
formatter=plain
args=('FILE',)

[formatter_plain]
format=%(name)s|%(levelname)s|%(message)s
"""


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
@pytest.mark.parametrize("custom", [False, True], ids=["default-format", "custom-format"])
def test_log_config_files_route_access_lines_through_logging(tmp_path, kind, custom):
    log_file = tmp_path / "access.log"
    config_path = tmp_path / f"logging.{kind}"
    if kind == "ini":
        config_path.write_text(_INI_CONFIG.replace("FILE", str(log_file)))
    else:
        data = json.loads(json.dumps(_DICT_CONFIG).replace("FILE", str(log_file)))
        if kind == "json":
            config_path.write_text(json.dumps(data))
        else:
            import yaml

            config_path.write_text(yaml.safe_dump(data))
    args = ["--log-config", str(config_path)]
    if custom:
        args += ["--access-log-format", '%(h)s "%(r)s" %(s)s %(b)s']
    with serve(*args, started=False) as server:
        # Our handlers are replaced: the "running on" line may not reach stderr.
        port = _wait_for_any_port(server)
        server.port = port
        _, client_port = exchange(server, b"GET /x?y=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.stop() == 0
    lines = log_file.read_text().splitlines()
    expected = (
        '127.0.0.1 "GET /x?y=1 HTTP/1.1" 200 2'
        if custom
        else f'127.0.0.1:{client_port} - "GET /x?y=1 HTTP/1.1" 200'
    )
    assert lines == [f"fastasgi.access|INFO|{expected}"]
    assert server.stdout() == ""


def _wait_for_any_port(server) -> int:
    """The port of a server started with --port 0 whose log may go elsewhere: read it from
    /proc (the listening socket of the process)."""
    deadline = time.monotonic() + 20
    pid = server.proc.pid
    while time.monotonic() < deadline:
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            with open(f"/proc/{pid}/net/tcp") as table:
                for row in table.read().splitlines()[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                        return int(fields[1].split(":")[1], 16)
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no listening socket; log:\n{server.stderr}")


# --- in process: the direct writer and logging agree --------------------------------------------

SCOPE = {
    "type": "http",
    "client": ("10.0.0.7", 51234),
    "method": "POST",
    "path": "/a b",
    "raw_path": b"/a%20b\x01",
    "query_string": b"q=\xff",
    "http_version": "1.0",
    "headers": [],
}


@pytest.mark.parametrize("colors", [False, True])
@pytest.mark.parametrize(
    "fmt",
    [
        DEFAULT_ACCESS_FMT,
        "%(levelprefix)s %(message)s",
        "%(name)s %(levelname)s %(message)s [%(status_code)s]",
    ],
)
def test_compiled_line_equals_the_formatters_line(colors, fmt):
    formatter = AccessFormatter(fmt, use_colors=colors)
    line = compile_access_format(_line_format(formatter, '%(client_addr)s - "%(request_line)s" %(s)s'))
    for status in (101, 200, 304, 404, 500, 599):
        for scope in (SCOPE, dict(SCOPE, client=None, query_string=b"")):
            record = logging.LogRecord(
                "fastasgi.access",
                logging.INFO,
                __file__,
                1,
                ACCESS_LOG_FORMAT,
                _uvicorn_args(scope, status),
                None,
            )
            assert line(scope, status, 0, 0.1) == formatter.format(record)


def test_formatters_we_do_not_compile_go_through_logging():
    assert _line_format(logging.Formatter("%(asctime)s %(message)s"), "%(s)s") is None
    assert _line_format(logging.Formatter("{message}", style="{"), "%(s)s") is None
    assert _line_format(logging.Formatter("%(message)s"), "%(s)s") == "%(s)s"
    assert _line_format(None, "%(s)s") == "%(s)s"


def test_escape():
    assert escape(b"/plain/path-_.~!$&'()*+,;=:@") == "/plain/path-_.~!$&'()*+,;=:@"
    assert (
        escape(b'\x00\x1b\n\r\t"\\\x7f\x80\xff ok') == "\\x00\\x1b\\x0a\\x0d\\x09\\x22\\x5c\\x7f\\x80\\xff ok"
    )


def test_logger_reconfigured_at_run_time_is_followed(tmp_path):
    """A handler added after the callback was made (as an app's lifespan might): the next
    batch goes through logging, to both handlers."""
    logger = logging.getLogger("fastasgi.access")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    first, second = tmp_path / "one.log", tmp_path / "two.log"
    try:
        logger.handlers = []
        logger.propagate = False
        logger.setLevel(logging.INFO)
        direct = logging.StreamHandler(open(first, "w"))  # noqa: SIM115 - closed below, as the handler's stream
        direct.setFormatter(AccessFormatter("%(levelprefix)s %(message)s", use_colors=False))
        logger.addHandler(direct)
        access_log = make_access_log()
        access_log(SCOPE, 200, 5, 0.01)  # no running loop: written at once, directly
        extra = logging.FileHandler(second)
        extra.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(extra)
        access_log(SCOPE, 404, 0, 0.01)
        access_log.flush()
        direct.stream.close()
        extra.close()
    finally:
        logger.handlers, logger.level, logger.propagate = saved
    one = first.read_text().splitlines()
    two = second.read_text().splitlines()
    assert one == [
        'INFO:     10.0.0.7:51234 - "POST /a%20b\\x01?q=\\xff HTTP/1.0" 200',
        'INFO:     10.0.0.7:51234 - "POST /a%20b\\x01?q=\\xff HTTP/1.0" 404',
    ]
    assert two == ['10.0.0.7:51234 - "POST /a%20b\\x01?q=\\xff HTTP/1.0" 404']
