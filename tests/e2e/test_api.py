"""The Python API: ``fastasgi.run()``, ``Config``, ``Server`` (also inside a running loop),
and the access log callback. Servers run in subprocess scripts on loopback."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import textwrap
import threading

import httpx
import pytest

import fastasgi
from fastasgi._accesslog import make_access_log
from fastasgi.config import Config, ConfigError
from fastasgi.server import _context_options
from support.server import HTTP_TIMEOUT, ServerProcess


def script(tmp_path, body: str) -> list[str]:
    path = tmp_path / "api_script.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


# --- the package -----------------------------------------------------------------------------


def test_public_api():
    from fastasgi._version import __version__

    assert fastasgi.__version__ == __version__ == "0.1.0"
    assert set(fastasgi.__all__) == {"run", "Config", "Server", "__version__"}
    assert fastasgi.Config is Config


# --- fastasgi.run() ----------------------------------------------------------------------------


def test_run_with_an_app_object(tmp_path):
    command = script(
        tmp_path,
        """
        import fastasgi
        from cli_app import app

        fastasgi.run(app, host="127.0.0.1", port=0, timeout_keep_alive=2)
        print("run returned", flush=True)
        """,
    )
    with ServerProcess(command) as server:
        server.wait_started()
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).text == "hello from cli_app"
        assert server.stop() == 0
    assert "run returned" in server.stdout()


def test_run_with_an_import_string_and_options(tmp_path):
    command = script(
        tmp_path,
        """
        import fastasgi

        fastasgi.run("cli_app:app", port=0, lifespan="off", server_header=False,
                     headers=[("x-api", "yes")], access_log=False)
        """,
    )
    with ServerProcess(command) as server:
        server.wait_started()
        response = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
        assert server.stop() == 0
    assert response.headers["x-api"] == "yes" and "server" not in response.headers
    assert "Waiting for application startup." not in server.stderr
    assert '"GET / HTTP/1.1"' not in server.stdout()


def test_run_with_a_bad_import_string_exits_3(tmp_path):
    # uvicorn.run's code for an app it cannot load (STARTUP_FAILURE)
    command = script(tmp_path, "import fastasgi\nfastasgi.run('nosuch_module_for_api_test:app', port=0)\n")
    with ServerProcess(command) as server:
        assert server.wait_exit() == 3
    assert server.stderr_lines == [
        'ERROR:    Error loading ASGI app. Could not import module "nosuch_module_for_api_test".'
    ]


def test_run_refuses_what_it_cannot_honour(tmp_path):
    command = script(tmp_path, "import fastasgi\nfastasgi.run('cli_app:app', http='h11')\n")
    with ServerProcess(command) as server:
        assert server.wait_exit() == 1
    assert server.stderr_lines == [
        "ERROR:    --http h11 is not supported: fastasgi always uses its own llhttp-based HTTP/1.1 protocol"
        " (--http auto; --http h2 serves HTTP/2 only)"
    ]


def test_limit_max_requests_stops_the_server(tmp_path):
    command = script(tmp_path, "import fastasgi\nfastasgi.run('cli_app:app', port=0, limit_max_requests=2)\n")
    with ServerProcess(command) as server:
        server.wait_started()
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            for _ in range(2):
                assert client.get(server.url + "/").status_code == 200
        assert server.wait_exit() == 0
    assert "INFO:     Maximum request limit of 2 exceeded. Terminating process." in server.stderr_lines


def test_limit_concurrency_answers_503_beyond_it(tmp_path):
    command = script(tmp_path, "import fastasgi\nfastasgi.run('cli_app:app', port=0, limit_concurrency=1)\n")
    with ServerProcess(command) as server:
        server.wait_started()
        results: dict = {}

        def slow():
            try:
                results["slow"] = httpx.get(server.url + "/slow?s=1", timeout=HTTP_TIMEOUT)
            except httpx.HTTPError as exc:
                results["slow"] = exc

        thread = threading.Thread(target=slow, daemon=True)
        thread.start()
        server.wait_for("slow started")
        busy = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
        thread.join(HTTP_TIMEOUT)
        assert server.stop() == 0
    assert busy.status_code == 503
    assert isinstance(results["slow"], httpx.Response) and results["slow"].status_code == 200


@pytest.mark.parametrize("ws", ["websockets", "auto"])
def test_websockets_without_the_websockets_library(tmp_path, ws):
    """The handshake and the frames are fastasgi's own: the websockets package is a test
    dependency (the client here), not a runtime one."""
    from websockets.sync.client import connect

    body = f"""
        import sys
        sys.modules["websockets"] = None  # as if the library were not installed
        import fastasgi
        fastasgi.run("ws_echo:app", port=0, ws="{ws}")
        """
    with ServerProcess(script(tmp_path, body)) as server:
        server.wait_started()
        url = server.url.replace("http://", "ws://") + "/echo"
        with connect(url, open_timeout=HTTP_TIMEOUT, close_timeout=HTTP_TIMEOUT) as client:
            client.send("h\u00e9llo")
            assert client.recv(timeout=HTTP_TIMEOUT) == "h\u00e9llo"
            assert client.response.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        assert server.stop() == 0


# --- Server -------------------------------------------------------------------------------------


def test_server_serve_inside_a_running_loop(tmp_path):
    command = script(
        tmp_path,
        """
        import asyncio, signal
        import httpx
        import fastasgi
        from cli_app import app

        notified = 0

        async def notify():
            global notified
            notified += 1

        async def main():
            handler_before = signal.getsignal(signal.SIGTERM)
            config = fastasgi.Config(app, port=0, callback_notify=notify, timeout_notify=0.1,
                                     access_log=False)
            server = fastasgi.Server(config)
            task = asyncio.create_task(server.serve())
            for _ in range(200):
                if server.started or task.done():
                    break
                await asyncio.sleep(0.05)
            assert server.started, "not started"
            port = server.servers[0].sockets[0].getsockname()[1]
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"http://127.0.0.1:{port}/loop")
            print("response:", response.status_code, response.text, flush=True)
            await asyncio.sleep(0.5)
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            print("serve returned; notified:", notified > 0, flush=True)
            print("signal handler restored:", signal.getsignal(signal.SIGTERM) is handler_before, flush=True)
            print("loop still running:", asyncio.get_running_loop().is_running(), flush=True)

        asyncio.run(main())
        """,
    )
    with ServerProcess(command) as server:
        assert server.wait_exit(30) == 0, server.stderr
    assert server.stdout_lines == [
        "response: 200 asyncio.unix_events._UnixSelectorEventLoop",
        "serve returned; notified: True",
        "signal handler restored: True",
        "loop still running: True",
    ]
    assert "Finished server process" in server.stderr


def test_server_run_with_sockets_handed_in(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    command = script(
        tmp_path,
        f"""
        import socket
        import fastasgi

        sock = socket.socket(fileno={listener.fileno()})
        try:
            fastasgi.Server(fastasgi.Config("cli_app:app", loop="asyncio")).run(sockets=[sock])
        except KeyboardInterrupt:  # the SIGINT, raised again once the server has stopped
            print("KeyboardInterrupt; socket closed:", sock.fileno() == -1, flush=True)
        """,
    )
    try:
        with ServerProcess(command, pass_fds=(listener.fileno(),)) as server:
            server.wait_for("Application startup complete.")
            listener.close()
            response = httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT)
            assert response.text == "hello from cli_app"
            assert server.stop(signal.SIGINT) == 0
    finally:
        listener.close()
    # With sockets handed in (a supervisor's), the supervisor reports the address.
    assert "running on" not in server.stderr
    assert "Finished server process" in server.stderr
    assert server.stdout_lines[-1] == "KeyboardInterrupt; socket closed: True"


# --- Config, in process -----------------------------------------------------------------------


async def asgi3_app(scope, receive, send):
    pass


def config(**kwargs) -> Config:
    kwargs.setdefault("log_config", None)  # leave this process's logging alone
    return Config(kwargs.pop("app", asgi3_app), **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"port": 70000}, "Invalid value for '--port': 70000 is not in the range 0<=x<=65535."),
        ({"port": "80"}, "Invalid value for '--port': '80' is not a valid integer."),
        ({"backlog": 0}, "Invalid value for '--backlog': 0 is not in the range x>=1."),
        ({"timeout_keep_alive": -1}, "Invalid value for '--timeout-keep-alive': -1 is not in the range x>=0."),
        ({"limit_concurrency": 0}, "Invalid value for '--limit-concurrency': 0 is not in the range x>=1."),
        ({"loop": "tokio"}, "Invalid value for '--loop': 'tokio' is not one of 'none', 'auto', 'asyncio', 'uvloop'."),
        ({"lifespan": "yes"}, "Invalid value for '--lifespan': 'yes' is not one of 'auto', 'on', 'off'."),
        ({"log_level": "loud"}, "Invalid value for '--log-level': 'loud' is not one of "
                                "'critical', 'error', 'warning', 'info', 'debug', 'trace'."),
        ({"headers": ["no-colon"]}, "Invalid value for '--header': 'no-colon' is not of the form NAME:VALUE."),
        ({"headers": [("x-a", "b\r\nx-evil: 1")]}, "Invalid value for '--header': 'x-a:b\\r\\nx-evil: 1' "
                                                   "has CR, LF or NUL in its value."),
        ({"headers": [("bad name", "v")]}, "Invalid value for '--header': 'bad name:v' has an invalid header name."),
        ({"env_file": "/nonexistent/.env"}, "Invalid value for '--env-file': '/nonexistent/.env' is not a file."),
        ({"http": "h11"}, "--http h11 is not supported: fastasgi always uses its own llhttp-based "
                          "HTTP/1.1 protocol (--http auto; --http h2 serves HTTP/2 only)"),
        ({"interface": "wsgi"}, "--interface wsgi is not supported: fastasgi serves ASGI 3 and ASGI 2 applications"),
        ({"ws": "wsproto"}, "--ws wsproto is not supported: fastasgi's WebSockets are its own "
                            "implementation (--ws auto)"),
    ],
)  # fmt: skip
def test_config_errors_name_the_flag_and_value(kwargs, message):
    with pytest.raises(ConfigError) as info:
        config(**kwargs)
    assert str(info.value) == message


def test_config_defaults_are_uvicorns():
    c = config()
    assert (c.host, c.port, c.uds, c.fd, c.loop, c.ws, c.lifespan) == (
        "127.0.0.1",
        8000,
        None,
        None,
        "auto",
        "auto",
        "auto",
    )
    assert (c.ws_max_size, c.ws_max_queue, c.ws_ping_interval, c.ws_ping_timeout) == (
        16777216,
        32,
        20.0,
        20.0,
    )
    assert (c.backlog, c.timeout_keep_alive, c.root_path, c.access_log) == (2048, 5, "", True)
    assert (c.server_header, c.date_header, c.limit_request_head_size, c.limit_request_fields) == (
        True,
        True,
        65536,
        100,
    )


def test_config_header_encoding_and_alias():
    c = config(headers=["X-Frame-Options: DENY", ("x-b", " two ")], h11_max_incomplete_event_size=4096)
    assert c.encoded_headers == [(b"x-frame-options", b"DENY"), (b"x-b", b"two")]
    assert c.limit_request_head_size == 4096


def test_config_load_detects_asgi2_and_asgi3():
    class Asgi3Instance:
        async def __call__(self, scope, receive, send):
            pass

    class Asgi2:
        def __init__(self, scope):
            pass

    c3 = config(app=Asgi3Instance(), proxy_headers=False)
    c3.load()
    assert c3.interface == "asgi3" and isinstance(c3.loaded_app, Asgi3Instance)
    c2 = config(app=Asgi2, proxy_headers=False)
    c2.load()
    assert c2.interface == "asgi2" and c2.asgi_version == "2.0" and c2.loaded_app.app is Asgi2


def test_config_env_file(tmp_path, monkeypatch):
    pytest.importorskip("dotenv")
    monkeypatch.delenv("FASTASGI_API_TEST_VAR", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("FASTASGI_API_TEST_VAR=from-env-file\n")
    config(env_file=str(env_file))
    assert os.environ["FASTASGI_API_TEST_VAR"] == "from-env-file"


def test_config_log_config_json(tmp_path):
    log_file = tmp_path / "fastasgi.log"
    log_config = tmp_path / "log.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
                "loggers": {"fastasgi.api-test": {"handlers": ["file"], "level": "INFO"}},
            }
        )
    )
    config(log_config=str(log_config))
    logger = logging.getLogger("fastasgi.api-test")
    logger.info("configured from json")
    for handler in logger.handlers:
        handler.close()
    assert log_file.read_text() == "configured from json\n"


def test_config_bad_log_config(tmp_path):
    broken = tmp_path / "log.json"
    broken.write_text('{"version": 99}')
    with pytest.raises(ConfigError) as info:
        config(log_config=str(broken))
    assert str(info.value).startswith(f"Invalid value for '--log-config': '{broken}' cannot be used:")


# --- the access log -----------------------------------------------------------------------------


def scope(**overrides):
    base = {"client": ("10.0.0.7", 51234), "method": "GET", "path": "/a b", "raw_path": b"/a%20b",
            "query_string": b"q=1", "http_version": "1.1", "headers": []}  # fmt: skip
    base.update(overrides)
    return base


def test_access_log_off_is_none():
    """With the access log off the protocol gets no callback at all: nothing per request."""
    assert _context_options(config(access_log=False))["access_log"] is None
    assert _context_options(config())["access_log"] is not None


def test_access_log_line(caplog):
    access_log = make_access_log()
    logger = logging.getLogger("fastasgi.access")
    logger.addHandler(caplog.handler)  # directly: the logger may not propagate to the root
    try:
        with caplog.at_level(logging.INFO, logger="fastasgi.access"):
            access_log(scope(), 200, 12, 0.001)
            access_log(
                scope(client=None, raw_path=b"/caf\xc3\xa9", query_string=b"", method="POST"), 404, 0, 0.1
            )
    finally:
        logger.removeHandler(caplog.handler)
    # each record once: the handler is on the logger and, when it propagates, on the root
    records = list({id(record): record for record in caplog.records}.values())
    messages = [record.getMessage() for record in records if record.name == "fastasgi.access"]
    assert messages == [
        '10.0.0.7:51234 - "GET /a%20b?q=1 HTTP/1.1" 200',
        ' - "POST /caf\\xc3\\xa9 HTTP/1.1" 404',
    ]


def test_access_log_does_nothing_when_disabled(caplog):
    access_log = make_access_log()
    logger = logging.getLogger("fastasgi.access")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="fastasgi.access"):
            access_log({}, 200, 0, 0.0)  # an empty scope: no formatting was attempted
    finally:
        logger.removeHandler(caplog.handler)
    assert not [record for record in caplog.records if record.name == "fastasgi.access"]


def test_access_formatter_matches_uvicorns_line():
    from fastasgi.logging import ACCESS_LOG_FORMAT, AccessFormatter

    formatter = AccessFormatter(
        '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False
    )
    record = logging.LogRecord(
        "fastasgi.access",
        logging.INFO,
        __file__,
        1,
        ACCESS_LOG_FORMAT,
        ("127.0.0.1:5000", "GET", "/x", "1.1", 418),
        None,
    )
    assert formatter.format(record) == 'INFO:     127.0.0.1:5000 - "GET /x HTTP/1.1" 418 I\'m a Teapot'
    assert record.getMessage() == '127.0.0.1:5000 - "GET /x HTTP/1.1" 418'
