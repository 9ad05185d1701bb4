"""Config validation, called directly: defaults, and one-line errors that name the flag and
the bad value (no server is started; building a Config configures logging, which the
``restore_logging`` fixture undoes)."""

from __future__ import annotations

import pytest

from fastasgi.config import Config, ConfigError

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)


def test_defaults():
    config = Config("app:app")
    assert (config.host, config.port, config.workers) == ("127.0.0.1", 8000, None)
    assert config.endpoints == [("tcp", ("127.0.0.1", 8000))]
    assert "127.0.0.1" in config.trusted_proxies and "::1" in config.trusted_proxies
    assert "10.0.0.1" not in config.trusted_proxies


@pytest.mark.parametrize(
    "kwargs,flag,shown",
    [
        ({"port": 70000}, "--port", "70000"),
        ({"port": "80"}, "--port", "'80'"),
        ({"backlog": 0}, "--backlog", "0"),
        ({"limit_concurrency": 0}, "--limit-concurrency", "0"),
        ({"limit_request_fields": 0}, "--limit-request-fields", "0"),
        ({"limit_request_body": -1}, "--limit-request-body", "-1"),
        ({"timeout_keep_alive": -1}, "--timeout-keep-alive", "-1"),
        ({"timeout_request_head": "soon"}, "--timeout-request-head", "'soon'"),
        ({"log_level": "loud"}, "--log-level", "'loud'"),
        ({"lifespan": "maybe"}, "--lifespan", "'maybe'"),
        ({"forwarded_allow_ips": "10.0.0.0/33"}, "--forwarded-allow-ips", "'10.0.0.0/33'"),
        ({"access_log_format": "%(nope)s"}, "--access-log-format", "%(nope)s"),
        ({"ssl_keyfile_password": "pw"}, "--ssl-keyfile-password", "--ssl-certfile"),
        ({"limit_max_memory": 0}, "--limit-max-memory", "0"),
        ({"limit_max_memory_jitter": -1}, "--limit-max-memory-jitter", "-1"),
        ({"limit_worker_lifetime": 0}, "--limit-worker-lifetime", "0"),
        ({"limit_worker_lifetime_jitter": "x"}, "--limit-worker-lifetime-jitter", "'x'"),
        # off is "off" (or None), not any word
        ({"limit_concurrency": "never"}, "--limit-concurrency", "'never'"),
        ({"timeout_request": -1}, "--timeout-request", "-1"),
        ({"ssl_cert_reqs": 5}, "--ssl-cert-reqs", "5"),
        ({"http2_max_frame_size": 1024}, "--http2-max-frame-size", "1024"),
        ({"ws": "tornado"}, "--ws", "'tornado'"),
    ],
)
def test_bad_values_name_the_flag_and_the_value(kwargs, flag, shown):
    with pytest.raises(ConfigError) as info:
        Config("app:app", **kwargs)
    message = str(info.value)
    assert flag in message and shown in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    "kwargs,says",
    [
        ({"http": "h11"}, "--http h11 is not supported"),
        ({"interface": "wsgi"}, "--interface wsgi is not supported"),
        ({"reuse_port": True, "uds": "/tmp/fastasgi-test.sock"}, "--reuse-port"),
        ({"reload": True, "limit_worker_lifetime": 60}, "cannot be used with --reload"),
        ({"reload": True, "limit_max_memory": 500}, "cannot be used with --reload"),
    ],
)
def test_settings_that_cannot_be_honoured_are_refused(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        Config("app:app", **kwargs)


def test_off_is_none_whatever_the_spelling():
    config = Config("app:app", timeout_request_head=0, timeout_request="off", limit_request_body="none")
    assert config.timeout_request_head is config.timeout_request is config.limit_request_body is None
    # uvicorn's None turns websocket pings off, as before
    assert Config("app:app", ws_ping_interval=None).ws_ping_interval is None


def test_flags_in_messages_are_the_command_lines():
    # the repeatable options' flags are singular, their keywords plural
    with pytest.raises(ConfigError, match="'--header'"):
        Config("app:app", headers=["no colon"])


def test_h11_max_incomplete_event_size_is_the_head_size_limit():
    assert Config("app:app", h11_max_incomplete_event_size=2048).limit_request_head_size == 2048
    with pytest.raises(ConfigError, match="two names for one limit"):
        Config("app:app", h11_max_incomplete_event_size=2048, limit_request_head_size=4096)


def test_web_concurrency_is_the_default_for_workers(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert Config("app:app").workers == 3
    assert Config("app:app", workers=2).workers == 2
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        Config("app:app")


def test_forwarded_allow_ips_from_the_environment(monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    trusted = Config("app:app").trusted_proxies
    assert "10.1.2.3" in trusted and "127.0.0.1" not in trusted


def test_uds_and_fd_endpoints():
    assert Config("app:app", uds="/tmp/fastasgi-test.sock").endpoints == [("unix", "/tmp/fastasgi-test.sock")]
    assert Config("app:app", fd=3).endpoints == [("fd", 3)]


@pytest.mark.parametrize(
    "kwargs,supervised",
    [
        ({}, False),
        ({"workers": 1}, False),
        ({"workers": 2}, True),
        ({"reload": True}, True),
        # uvicorn's meaning: the one server process exits at the limit.
        ({"limit_max_requests": 100}, False),
        # Asked for with --workers, even one: a supervisor starts the replacement first.
        ({"workers": 1, "limit_max_requests": 100}, True),
        ({"limit_max_memory": 500}, True),
        ({"limit_worker_lifetime": 3600}, True),
    ],
)
def test_which_settings_run_a_supervisor(kwargs, supervised):
    assert Config("app:app", **kwargs).supervised is supervised


# -- uvicorn's Config methods that embedders call ---------------------------------------------


def test_load_is_idempotent():
    calls = []

    def factory():
        calls.append("built")

        async def app(scope, receive, send):
            pass

        return app

    config = Config(factory, factory=True, proxy_headers=False)
    assert (config.loaded, config.loaded_app) == (False, None)
    config.load()
    first = config.loaded_app
    config.load()  # a second call (Server.serve after the embedder's own) changes nothing
    assert config.loaded and config.loaded_app is first and callable(first)
    assert calls == ["built"]


@pytest.mark.parametrize("loop, expected", [("asyncio", "_UnixSelectorEventLoop"), ("uvloop", "Loop")])
def test_setup_event_loop_makes_the_loop_asyncio_creates(loop, expected):
    import asyncio

    pytest.importorskip("uvloop")
    try:
        Config("app:app", loop=loop).setup_event_loop()
        made = asyncio.new_event_loop()
        made.close()

        async def running():
            return type(asyncio.get_running_loop()).__name__

        assert (type(made).__name__, asyncio.run(running())) == (expected, expected)
    finally:
        asyncio.set_event_loop_policy(None)


def test_bind_socket_returns_one_listening_inheritable_socket():
    import socket

    sock = Config("app:app", host="127.0.0.1", port=0).bind_socket()
    try:
        assert sock.family == socket.AF_INET and sock.get_inheritable()
        # listening already: a client connects before anything serves it
        with socket.create_connection(sock.getsockname(), timeout=2):
            pass
    finally:
        sock.close()


def test_bind_socket_refuses_several_addresses_and_names_the_one_it_cannot_bind():
    import socket

    from fastasgi._sockets import BindError

    with pytest.raises(ConfigError, match=r"listen on 2 addresses \(--bind\): use bind_sockets\(\)"):
        Config("app:app", bind=["127.0.0.1:0", "127.0.0.1:0"]).bind_socket()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        with pytest.raises(BindError) as caught:
            Config("app:app", host="127.0.0.1", port=port).bind_socket()
        assert caught.value.where == f"127.0.0.1:{port}"
    finally:
        taken.close()


@pytest.mark.parametrize(
    "kwargs,use_subprocess,should_reload",
    [
        ({}, False, False),
        ({"workers": 2}, True, False),
        ({"reload": True}, True, True),
        ({"workers": 1}, False, False),
    ],
)
def test_uvicorns_use_subprocess_and_should_reload(kwargs, use_subprocess, should_reload):
    config = Config("tests.apps:app", log_config=None, **kwargs)
    assert config.use_subprocess is use_subprocess
    assert config.should_reload is should_reload
    # an app object cannot be reloaded
    assert Config(lambda scope, receive, send: None, log_config=None, **kwargs).should_reload is False
