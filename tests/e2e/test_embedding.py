"""``Server`` embedded in another program, as embedders and test suites use uvicorn's: in a
thread, inside a running event loop, on sockets the embedder bound, step by step, and with
the stop signals captured and raised again.

Most tests run in this process, on loopback, and the ones that only use uvicorn's surface
run against uvicorn too: what they assert is then uvicorn's behaviour, not only ours. The
signal tests run a script in a process of its own, since they signal the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
import socket
import sys
import textwrap
import threading
import time
from typing import Any

import httpx
import pytest

import fastasgi
from apps.cli_app import app as cli_app
from support.server import HTTP_TIMEOUT, START_TIMEOUT, ServerProcess

#: both implement what the parametrized tests use
IMPLEMENTATIONS = ["fastasgi", "uvicorn"]
#: how long a server may take to stop once asked to
STOP_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _restore_logging():
    """Building a Config configures its loggers: put them back as they were."""
    names = ("fastasgi", "fastasgi.error", "fastasgi.access", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {}
    for name in names:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate, logger.disabled)
    yield
    for name, (handlers, level, propagate, disabled) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled


def implementation(name: str) -> Any:
    if name == "uvicorn":
        return pytest.importorskip("uvicorn")
    return fastasgi


def make_server(impl: str, app: Any = cli_app, server_class: type | None = None, **settings: Any) -> Any:
    module = implementation(impl)
    settings.setdefault("port", 0)
    settings.setdefault("lifespan", "on")
    settings.setdefault("access_log", False)
    # the root logger (caplog) sees the records; nothing is written to this process's stderr
    config = module.Config(app, log_config=None, **settings)
    return (server_class or module.Server)(config)


def quiet_class(impl: str) -> type:
    """What test suites write: a Server whose install_signal_handlers does nothing."""
    base = implementation(impl).Server

    class QuietServer(base):  # type: ignore[misc, valid-type]
        def install_signal_handlers(self) -> None:
            pass

    return QuietServer


def port_of(server: Any) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def handlers() -> dict[int, Any]:
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


@contextlib.contextmanager
def running_in_a_thread(server: Any):
    """Start ``server.run()`` in a thread, wait (bounded) for ``started``, yield its port;
    then set ``should_exit`` and join within STOP_TIMEOUT (a failure to do so fails the
    test). Whatever happens, the server is stopped: forced when it will not stop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=target, name="embedded-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started, f"the server did not start within {START_TIMEOUT}s: {errors}"
        yield port_of(server)
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive(), f"the server did not stop within {STOP_TIMEOUT}s of should_exit"
        assert errors == []
    finally:
        if thread.is_alive():
            server.should_exit = server.force_exit = True
            thread.join(STOP_TIMEOUT)


async def wait_started(server: Any, task: asyncio.Task[Any]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # its exception, if any
    assert server.started, f"the server did not start within {START_TIMEOUT}s"
    return port_of(server)


@contextlib.asynccontextmanager
async def serving(server: Any, **serve_kwargs: Any):
    """``serve()`` as a task of the running loop; yields its port; on the way out the task
    is awaited (bounded) after should_exit, and forced if it will not end."""
    task = asyncio.create_task(server.serve(**serve_kwargs))
    try:
        yield await wait_started(server, task), task
        server.should_exit = True
        await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
    finally:
        if not task.done():
            server.should_exit = server.force_exit = True
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, STOP_TIMEOUT)


# --- (a) in a thread ------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_thread_with_install_signal_handlers_a_no_op(impl):
    server = make_server(impl, server_class=quiet_class(impl))
    with running_in_a_thread(server) as port, httpx.Client(timeout=HTTP_TIMEOUT) as client:
        responses = [client.get(f"http://127.0.0.1:{port}/") for _ in range(3)]
        assert client.get(f"http://127.0.0.1:{port}/loop").status_code == 200
    assert [(r.status_code, r.text) for r in responses] == [(200, "hello from cli_app")] * 3
    assert refused(port)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_plain_server_in_a_thread_leaves_signal_handlers_alone(impl):
    """Off the main thread Python cannot install signal handlers: the server installs none
    (rather than failing) and is stopped with should_exit."""
    before = handlers()
    server = make_server(impl)
    with running_in_a_thread(server) as port:
        during = handlers()
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT)
    assert response.text == "hello from cli_app"
    assert during == before and handlers() == before
    assert refused(port)


def test_install_signal_handlers_override_is_honoured_in_the_main_thread():
    """In the main thread the plain server's handle_exit takes SIGINT and SIGTERM while it
    serves; a subclass whose install_signal_handlers is a no-op leaves the process's own.
    Either way the handlers are the process's again afterwards. (uvicorn since 0.29 no
    longer calls install_signal_handlers; older ones did, and suites still override it.)"""
    before = handlers()
    seen = {}

    async def main(server: Any) -> None:
        async with serving(server):
            seen[type(server).__name__] = handlers()

    plain = make_server("fastasgi")
    asyncio.run(main(plain))
    quiet = make_server("fastasgi", server_class=quiet_class("fastasgi"))
    asyncio.run(main(quiet))
    assert seen["Server"] == {signal.SIGINT: plain.handle_exit, signal.SIGTERM: plain.handle_exit}
    # asyncio.run puts its own SIGINT handler in while it runs; SIGTERM is untouched
    assert seen["QuietServer"][signal.SIGTERM] == before[signal.SIGTERM]
    assert seen["QuietServer"][signal.SIGINT] != quiet.handle_exit
    assert handlers() == before


# --- (b) inside a running event loop ----------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_serve_as_a_task_of_a_running_loop(impl):
    before = handlers()
    server = make_server(impl)
    outcome = {}

    async def main() -> None:
        async with serving(server) as (port, task):
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                outcome["texts"] = [(await client.get(f"http://127.0.0.1:{port}/")).text for _ in range(3)]
            outcome["requests"] = server.server_state.total_requests
            outcome["servers"] = [isinstance(s, asyncio.AbstractServer) for s in server.servers]
        outcome["task"] = task.done() and task.exception() is None
        outcome["loop running"] = asyncio.get_running_loop().is_running()

    asyncio.run(main())
    assert outcome == {
        "texts": ["hello from cli_app"] * 3,
        "requests": 3,
        "servers": [True],
        "task": True,
        "loop running": True,
    }
    assert handlers() == before  # and no signal was captured, so none is raised again


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_on_tick_drives_the_main_loop(impl):
    """main_loop() calls on_tick(counter) every 0.1 s, counting from 0, until it says True."""
    counters: list[int] = []
    base = implementation(impl).Server

    class Counting(base):  # type: ignore[misc, valid-type]
        async def on_tick(self, counter: int) -> bool:
            counters.append(counter)
            return await super().on_tick(counter) or counter == 4

    server = make_server(impl, server_class=Counting)

    async def main() -> float:
        started = time.monotonic()
        await asyncio.wait_for(server.serve(), STOP_TIMEOUT)
        return time.monotonic() - started

    elapsed = asyncio.run(main())
    assert counters == [0, 1, 2, 3, 4]
    assert server.started and not server.should_exit
    assert 0.35 < elapsed < 5


# --- (c) on sockets the embedder bound -----------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_serve_on_a_socket_the_embedder_bound(impl, caplog):
    caplog.set_level(logging.INFO)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # not listening yet: serving listens
    port = sock.getsockname()[1]
    server = make_server(impl)
    texts = []

    async def main() -> None:
        async with serving(server, sockets=[sock]) as (served_port, _):
            assert served_port == port
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                texts.append((await client.get(f"http://127.0.0.1:{port}/")).text)

    try:
        asyncio.run(main())
    finally:
        sock.close()
    assert texts == ["hello from cli_app"]
    assert refused(port)
    # whoever bound the socket reports where it listens: the server says nothing of it
    assert not [m for m in caplog.messages if "running on" in m]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_serve_on_config_bind_socket(impl, caplog):
    caplog.set_level(logging.INFO)
    server = make_server(impl)
    sock = server.config.bind_socket()
    port = sock.getsockname()[1]
    running = [m for m in caplog.messages if "running on" in m]
    texts = []

    async def main() -> None:
        async with serving(server, sockets=[sock]):
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                texts.append((await client.get(f"http://127.0.0.1:{port}/")).text)

    try:
        asyncio.run(main())
    finally:
        sock.close()
    assert texts == ["hello from cli_app"]
    assert sock.fileno() == -1  # shutdown(sockets) closed it
    assert len(running) == 1 and running[0].endswith(
        f"running on http://127.0.0.1:{port} (Press CTRL+C to quit)"
    ), running
    assert refused(port)


# --- (d) step by step ---------------------------------------------------------------------


def lifespan_recorder(events: list[str]) -> Any:
    """cli_app, whose lifespan startup and shutdown are recorded in ``events``."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rpartition(".")[2]
                events.append(kind)
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await cli_app(scope, receive, send)

    return app


def test_startup_main_loop_shutdown_one_by_one():
    events: list[str] = []
    server = make_server("fastasgi", app=lifespan_recorder(events))
    assert not server.config.loaded
    outcome: dict[str, Any] = {}

    async def main() -> None:
        await asyncio.wait_for(server.startup(), START_TIMEOUT)  # loads the app itself
        outcome["after startup"] = (server.started, server.config.loaded, list(events))
        try:
            port = port_of(server)
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as client:
                outcome["text"] = (await client.get(f"http://127.0.0.1:{port}/")).text
            loop = asyncio.get_running_loop()
            loop.call_later(0.3, setattr, server, "should_exit", True)
            await asyncio.wait_for(server.main_loop(), STOP_TIMEOUT)
            outcome["before shutdown"] = (refused(port), list(events))
        finally:
            await asyncio.wait_for(server.shutdown(), STOP_TIMEOUT)
        outcome["after shutdown"] = (refused(port), list(events))
        # nothing of the server is left running on the loop
        outcome["tasks"] = asyncio.all_tasks() - {asyncio.current_task()}

    asyncio.run(main())
    assert outcome == {
        "after startup": (True, True, ["startup"]),
        "text": "hello from cli_app",
        "before shutdown": (False, ["startup"]),  # main_loop returning closes nothing
        "after shutdown": (True, ["startup", "shutdown"]),
        "tasks": set(),
    }


# --- (e) force_exit ------------------------------------------------------------------------


def test_force_exit_ends_the_drain_at_once():
    events: list[str] = []
    server = make_server("fastasgi", app=lifespan_recorder(events), drain_delay=30)
    outcome: dict[str, Any] = {}

    async def main() -> None:
        async with serving(server) as (port, task):
            async with httpx.AsyncClient(timeout=30) as client:
                slow = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow?s=30"))
                await asyncio.sleep(0.3)
                server.should_exit = True
                await asyncio.sleep(0.5)
                # draining: still serving, new connections included
                async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as other:
                    outcome["during the drain"] = (await other.get(f"http://127.0.0.1:{port}/")).status_code
                outcome["serving after should_exit"] = not task.done()
                forced = time.monotonic()
                server.force_exit = True
                await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
                outcome["forced stop took < 1.5s"] = time.monotonic() - forced < 1.5
                results = await asyncio.gather(slow, return_exceptions=True)
                outcome["slow request cut"] = isinstance(results[0], httpx.HTTPError)
        outcome["refused"] = refused(port)

    asyncio.run(main())
    assert outcome == {
        "during the drain": 200,
        "serving after should_exit": True,
        "forced stop took < 1.5s": True,
        "slow request cut": True,
        "refused": True,
    }
    assert events == ["startup"]  # forced: no lifespan shutdown


# --- (f) capture_signals with a real signal ------------------------------------------------------------


SIGNAL_SCRIPT = """
import importlib, signal, sys
from cli_app import app

impl = importlib.import_module(sys.argv[1])
if sys.argv[2] == "own-handler":
    def own(sig, frame):
        print("own handler:", signal.Signals(sig).name, flush=True)
    signal.signal(signal.SIGTERM, own)
server = impl.Server(impl.Config(app, port=0, lifespan="on", access_log=False))
try:
    server.run()
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
print("run returned; started:", server.started, flush=True)
"""


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "sig, setup, code, stdout",
    [
        # Python's SIGINT handler: KeyboardInterrupt out of run(), after the graceful stop
        (signal.SIGINT, "plain", 0, ["KeyboardInterrupt", "run returned; started: True"]),
        # SIGTERM's default action ends the process, after the graceful stop
        (signal.SIGTERM, "plain", -signal.SIGTERM, []),
        # the embedder's own handler is put back and gets the signal, once
        (signal.SIGTERM, "own-handler", 0, ["own handler: SIGTERM", "run returned; started: True"]),
    ],
    ids=["sigint", "sigterm", "sigterm-own-handler"],
)
def test_a_captured_signal_is_raised_again_after_the_graceful_stop(tmp_path, impl, sig, setup, code, stdout):
    implementation(impl)
    path = tmp_path / "signal_script.py"
    path.write_text(textwrap.dedent(SIGNAL_SCRIPT))
    with ServerProcess([sys.executable, str(path), impl, setup]) as server:
        port = server.wait_started()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT).status_code == 200
        assert server.stop(sig) == code, server.stderr
    assert server.stdout_lines == stdout
    log = server.stderr
    # the signal came back only once everything had stopped
    assert log.index("Shutting down") < log.index("Application shutdown complete.") < log.index(
        "Finished server process"
    )
    assert "Traceback" not in log
