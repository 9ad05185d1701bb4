"""uvicorn's own test suite, run against fastasgi: the measure of "drop-in".

The suite is not vendored: at test time the sdist of the uvicorn release that the test extra
installs is fetched from PyPI with pip (once: it is kept in a cache directory), checked against
its pinned SHA-256 and unpacked; only its ``tests/`` and ``pyproject.toml`` are taken, never
the ``uvicorn/`` package beside them. A generated ``uvicorn`` package (the shim, below) goes
first on the subprocess's ``sys.path`` and maps uvicorn's public names onto fastasgi's, so
``from uvicorn import Config`` in uvicorn's tests gets ``fastasgi.Config`` itself (a
``mock.patch.object(Config, ...)`` in a test patches the class fastasgi uses).

Every collected test is classified by ``CLASSIFICATION`` (first matching pattern wins):
applicable (it drives uvicorn's public surface: the command line, ``run()``, ``Config``,
``Server``, a real listening server) or not, with the reason. Applicable tests that fail
are listed in ``KNOWN_FAILURES`` with their cause; every other applicable test must pass.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

#: the release that the test extra installs next to fastasgi (the benchmarks run it too); the
#: tests come from the same release so their expectations are that version's behaviour
UVICORN_VERSION = "0.55.0"
#: of uvicorn-0.55.0.tar.gz as PyPI serves it; a different file is never run
SDIST_SHA256 = "b65ae5f0f30cdcbc26a104b93d7d19723aa5f46fec3915a6c247d5795449331c"
SDIST_NAME = f"uvicorn-{UVICORN_VERSION}.tar.gz"

#: the test files read and classified (protocols/test_http2.py is uvicorn's zttp HTTP/2 and is
#: skipped whole by its own guard when zttp is not installed, so it is not listed)
SUITE_FILES = [
    "tests/test_cli.py",
    "tests/test_config.py",
    "tests/test_main.py",
    "tests/test_server.py",
    "tests/test_lifespan.py",
    "tests/middleware/test_proxy_headers.py",
    "tests/protocols/test_http.py",
    "tests/protocols/test_websocket.py",
]

APPLICABLE = "applicable"
INTERNAL = "internal"  # drives a uvicorn internal that fastasgi does not have
DUPLICATE = "duplicate"  # the same fastasgi code path as another variant that is run
OUT_OF_SCOPE = "out-of-scope"  # public, but not through a real server (see the table)

# Test node id pattern (fnmatch, ids as pytest prints them from the unpacked root) -> status and
# the reason. The first matching row wins, so the specific rows come before the file-wide ones.
CLASSIFICATION: list[tuple[str, str, str]] = [
    # -- test_cli.py: the click command, invoked with click's CliRunner
    ("tests/test_cli.py::*", APPLICABLE, "the click command (uvicorn.main) with run/Server.run patched"),
    # -- test_main.py
    (
        "tests/test_main.py::test_deprecated_server_state_from_main",
        INTERNAL,
        "uvicorn.main.ServerState, a deprecated alias of an internal class",
    ),
    ("tests/test_main.py::*", APPLICABLE, "run() and Server against a real listening server"),
    # -- variants (the files above take no protocol fixtures, so their own "h11" parameters are
    # not caught here). uvicorn runs most server tests once per protocol implementation (h11,
    # httptools, zttp; wsproto, websockets-sansio). fastasgi has one of each, so every variant
    # runs the same code: one is kept, the variant closest to fastasgi (httptools parses with
    # llhttp as fastasgi does; websockets-sansio is a --ws value fastasgi takes).
    ("*[[]h11*", DUPLICATE, "--http h11 variant: fastasgi has one HTTP/1.1 implementation (httptools variant run)"),
    ("*-h11[]]", DUPLICATE, "--http h11 variant: fastasgi has one HTTP/1.1 implementation (httptools variant run)"),
    ("*-h11-*", DUPLICATE, "--http h11 variant: fastasgi has one HTTP/1.1 implementation (httptools variant run)"),
    ("*zttp*", DUPLICATE, "--http zttp variant: zttp is not installed, uvicorn's guard skips it"),
    ("*wsproto*", DUPLICATE, "--ws wsproto variant: fastasgi has one WebSocket implementation (websockets-sansio run)"),
    # -- test_server.py: Server.serve()/run() on a real socket
    ("tests/test_server.py::*", APPLICABLE, "Server.serve()/run() with real sockets and signals"),
    # -- test_config.py: Config's public attributes and load(); these rows are its internals
    (
        "tests/test_config.py::test_concrete_http_class",
        INTERNAL,
        "Config.http_protocol_class: a uvicorn protocol class",
    ),
    ("tests/test_config.py::test_http2_requires_zttp_protocol", INTERNAL, "uvicorn's zttp HTTP/2 implementation"),
    ("tests/test_config.py::test_wsgi_app", INTERNAL, "uvicorn's WSGIMiddleware (fastasgi refuses --interface wsgi)"),
    (
        "tests/test_config.py::test_ws_websockets_emits_deprecation_warning",
        INTERNAL,
        "uvicorn's legacy websockets protocol class and its deprecation",
    ),
    (
        "tests/test_config.py::test_log_config_*",
        INTERNAL,
        "patches logging.config and uvicorn.config.open, i.e. how uvicorn's module reads the file",
    ),
    ("tests/test_config.py::test_custom_loop_*", INTERNAL, "uvicorn.config's loop-setup hook (a private function)"),
    ("tests/test_config.py::test_setup_event_loop_is_removed", INTERNAL, "the removal of uvicorn's private setup_event_loop"),
    ("tests/test_config.py::*", APPLICABLE, "Config's public attributes, load() and bind_socket()"),
    # -- test_lifespan.py: every test drives LifespanOn/LifespanOff directly
    ("tests/test_lifespan.py::*", INTERNAL, "drives uvicorn.lifespan.on.LifespanOn/off.LifespanOff, not a server"),
    # -- middleware/test_proxy_headers.py
    (
        "tests/middleware/test_proxy_headers.py::test_proxy_headers_websocket_x_forwarded_proto*",
        APPLICABLE,
        "ProxyHeadersMiddleware around an app behind a real server, over a real WebSocket",
    ),
    ("tests/middleware/test_proxy_headers.py::test_forwarded_hosts*", INTERNAL, "uvicorn's private _TrustedHosts class"),
    (
        "tests/middleware/test_proxy_headers.py::*",
        OUT_OF_SCOPE,
        "the middleware called in-process (httpx ASGITransport or a bare scope), no server",
    ),
    # -- protocols/test_http.py: one test starts a real server; the others feed bytes to the
    # protocol classes through MockTransport/MockLoop
    ("tests/protocols/test_http.py::test_fragmentation", APPLICABLE, "Server.run in a thread, raw socket client"),
    ("tests/protocols/test_http.py::*", INTERNAL, "protocol classes with a mocked transport and loop"),
    # -- protocols/test_websocket.py: the tests from test_send_respects_write_backpressure on
    # use MockWebSocketConnection (a protocol instance on a mocked transport)
    ("tests/protocols/test_websocket.py::test_send_respects_write_backpressure*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_close_waits_for_the_peer_close_frame*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_close_resumes_reads_paused_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_data_frame_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_ping_while_closing*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_close_gives_up_when_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_connection_lost_cancels_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_shutdown_while_the_close_reply_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_shutdown_during_denial_response*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_send_after_peer_close_raises_*", INTERNAL, "mocked transport"),
    ("tests/protocols/test_websocket.py::test_connection_lost_unblocks_paused_send*", INTERNAL, "mocked transport"),
    # these read Server.server_state.connections: uvicorn's protocol instances
    ("tests/protocols/test_websocket.py::test_frame_after_close_handshake_is_ignored*", INTERNAL, "server_state"),
    ("tests/protocols/test_websocket.py::test_server_keepalive_ping_pong*", INTERNAL, "server_state"),
    ("tests/protocols/test_websocket.py::test_server_keepalive_disabled*", INTERNAL, "server_state"),
    ("tests/protocols/test_websocket.py::*", APPLICABLE, "WebSocket behaviour through a real server and client"),
]

BUG = "fastasgi bug"  # fastasgi differs from uvicorn where it means to be the same
DIFFERENCE = "deliberate difference"  # fastasgi differs on purpose (the reason says why)

#: applicable tests that fail: node id pattern (fnmatch) -> (cause, "uvicorn: ...; fastasgi: ...").
#: A listed test that passes is reported as fixed (the list should then shrink) and does not
#: fail the check; an applicable test that fails and is not listed does.
KNOWN_FAILURES: dict[str, tuple[str, str]] = {
    "tests/test_config.py::test_bind_fd_works_with_reload_or_workers*": (
        BUG, "uvicorn: Config.bind_socket() on an inherited --fd with --reload or --workers; fastasgi: refused"),
    # -- the command line
    "tests/test_cli.py::test_cli_print_version": (
        DIFFERENCE, "the product's name: 'Running uvicorn X with ...' vs 'fastasgi X with ...'"),
    "tests/test_cli.py::test_cli_headers": (
        BUG, "uvicorn: --header reaches run() as [(name, value)]; fastasgi: as ['Name:Value'] strings"),
    "tests/test_cli.py::test_cli_invalid_header*": (
        BUG, "uvicorn: \"Expected 'Name:Value' format, got 'X-Foo'.\"; fastasgi words the usage error its own way"),
    "tests/test_cli.py::test_cli_call_server_run": (
        BUG, "uvicorn: run() exits 3 when Server.run returns without the server having started; fastasgi: 0"),
    "tests/test_cli.py::test_app_dir": (
        BUG, "as test_cli_call_server_run: exit 3 expected after a Server.run that did not start; fastasgi: 0"),
    "tests/test_cli.py::test_cli_call_change_reload_run": (BUG, "uvicorn: Config.bind_socket(); fastasgi: bind_sockets() only"),
    "tests/test_cli.py::test_cli_call_multiprocess_run": (BUG, "uvicorn: Config.bind_socket(); fastasgi: bind_sockets() only"),
    "tests/test_cli.py::test_cli_uds*": (BUG, "uvicorn: Config.bind_socket(); fastasgi: bind_sockets() only"),
    # -- Config
    "tests/test_config.py::test_config_should_reload_is_set*": (
        BUG, "uvicorn: Config.should_reload; fastasgi: no such attribute"),
    "tests/test_config.py::test_should_warn_on_invalid_reload_configuration": (
        BUG, "uvicorn: Config.should_reload, and a warning on uvicorn.error for reload with an app object; fastasgi: neither"),
    **{f"tests/test_config.py::test_{name}": (
        BUG, "uvicorn: Config.reload_dirs/reload_dirs_excludes are resolved Paths with nested and excluded "
        "directories removed, and a warning is logged for each dropped one; fastasgi: the strings as given")
        for name in ("reload_dir_is_set", "reload_subdir_removal", "reload_nested_subdirs_removal",
                     "reload_dir_subdirectories_are_removed", "reload_excluded_subdirectories_are_removed",
                     "reload_includes_exclude_dir_patterns_are_matched")},
    "tests/test_config.py::test_non_existant_reload_dir_is_not_set": (
        BUG, "uvicorn: a --reload-dir that does not exist is dropped (with a warning) for the cwd; fastasgi keeps it"),
    "tests/test_config.py::test_app_unimportable_module": (
        BUG, "uvicorn: Config.load() logs the error and exits (SystemExit 1); fastasgi: raises ConfigError"),
    "tests/test_config.py::test_app_unimportable_other": (
        BUG, "uvicorn: Config.load() logs the error and exits (SystemExit 1); fastasgi: raises ConfigError"),
    "tests/test_config.py::test_app_factory": (
        BUG, "uvicorn: a factory passed without --factory is called (with a warning); fastasgi: "
        "ConfigError 'Error loading ASGI app factory: missing a required argument: scope'"),
    "tests/test_config.py::test_socket_bind": (BUG, "uvicorn: Config.bind_socket(); fastasgi: bind_sockets() only"),
    "tests/test_config.py::test_config_use_subprocess*": (BUG, "uvicorn: Config.use_subprocess; fastasgi: no such attribute"),
    "tests/test_config.py::test_env_file[[]0-*": (
        BUG, "uvicorn: WEB_CONCURRENCY=0 from an env file is taken (no workers); fastasgi: ConfigError, x>=1"),
    # the cases where the level asked for differs from the one the logger had (0 is unset: the
    # effective level is then WARNING, 30, whichever logger is set)
    **{f"tests/test_config.py::test_config_log_effective_level[[]{had}-{asked}]": (
        BUG, "uvicorn: --log-level sets the uvicorn.* loggers' levels; fastasgi sets fastasgi.*")
        for had in (0, 5, 10, 20, 30, 40, 50) for asked in (5, 10, 20, 30, 40, 50)
        if had != asked and (had, asked) != (0, 30)},
    "tests/test_config.py::test_warn_when_using_reload_and_workers": (
        BUG, "uvicorn: a warning on uvicorn.error when both --reload and --workers are given; fastasgi logs none there"),
    # -- run() and Server
    "tests/test_main.py::test_run_invalid_app_config_combination": (
        BUG, "uvicorn: run(app_object, reload=True) warns on uvicorn.error and exits 3; fastasgi exits 1"),
    "tests/test_main.py::test_run_fails_fast_in_parent_on_bad_app_path": (
        BUG, "uvicorn: run() imports the app before Server.run and exits 3 on a bad path; fastasgi imports it in Server.run"),
    "tests/test_main.py::test_run_imports_app_before_starting_event_loop": (
        BUG, "uvicorn: run() imports the app before Server.run opens the event loop; fastasgi: inside it"),
    "tests/test_main.py::test_run_skips_eager_app_import_with_workers": (
        BUG, "uvicorn: Config.load_app; fastasgi: no such method"),
    "tests/test_main.py::test_run_match_config_params": (
        BUG, "uvicorn: run() spells out Config's keywords in its signature; fastasgi: run(app, **kwargs)"),
    "tests/test_main.py::test_exit_on_create_server_with_invalid_host": (
        BUG, "uvicorn: Server.serve() on an unresolvable host exits 3 (SystemExit); fastasgi: raises StartupError"),
    "tests/test_server.py::test_run_exits_with_startup_failure_on_unloadable_app": (
        BUG, "uvicorn: Server.run() with an unloadable app exits 3 (SystemExit); fastasgi: raises ConfigError"),
    "tests/test_server.py::test_request_than_limit_max_requests_warn_log*": (
        BUG, "intermittent: with two concurrent requests and --limit-max-requests 1, uvicorn always logs "
        "'Maximum request limit of 1 exceeded. Terminating process.'; fastasgi sometimes shuts down without it"),
    # -- the proxy headers middleware
    "tests/middleware/test_proxy_headers.py::test_proxy_headers_websocket_x_forwarded_proto*": (
        BUG, "uvicorn: ProxyHeadersMiddleware(app, trusted_hosts=...); fastasgi names the keyword 'trusted'"),
    # -- HTTP and WebSockets on the wire
    "tests/protocols/test_http.py::test_fragmentation": (
        DIFFERENCE, "Config(http='httptools'): fastasgi refuses to name an implementation it does not have"),
    # (the parameter's id is "header0" or the bytes themselves, by pytest version)
    "tests/protocols/test_websocket.py::test_unparseable_upgrade_closes_connection[[]*431*": (
        DIFFERENCE, "a 9,000-byte Cookie is over the websockets library's 8 KiB line limit (uvicorn: 431) but"
        " within fastasgi's --limit-request-head-size: the handshake reaches the app (here a broken one: 500)"),
    "tests/protocols/test_websocket.py::test_client_connection_lost[[]*": (
        BUG, "uvicorn: ws_ping_interval=0.0 is taken; fastasgi: ConfigError, x>0"),
    "tests/protocols/test_websocket.py::test_connection_lost_before_handshake_complete*": (
        BUG, "uvicorn: a client gone before the app accepted gets websocket.disconnect code 1006; fastasgi: 1012 "
        "(and a reason key)"),
    "tests/protocols/test_websocket.py::test_send_binary_data_to_server_bigger_than_default_on_websockets"
    "[[]httptools-max=defaults sent=defaults+1]": (
        BUG, "over-sized message: the client's close handshake fails on a transport fastasgi has already "
        "dropped after its 1009 close frame (uvicorn waits for the client's close)"),
    "tests/protocols/test_websocket.py::test_duplicate_handshake*": (
        DIFFERENCE, "an app error after accept: fastasgi sends close 1011 (RFC 6455 7.4.1, internal error) "
        "where uvicorn drops the TCP connection (client sees 1006)"),
    "tests/protocols/test_websocket.py::test_asgi_return_value*": (
        DIFFERENCE, "the app returned without closing: fastasgi completes the closing handshake (1000), uvicorn "
        "drops the connection (1006)"),
    "tests/protocols/test_websocket.py::test_close_transport_on_asgi_return*": (
        DIFFERENCE, "as test_asgi_return_value: a clean close (1000) where uvicorn drops the connection (1006)"),
    "tests/protocols/test_websocket.py::test_send_close_on_server_shutdown*": (
        DIFFERENCE, "websocket.disconnect carries 'reason' (the ASGI spec's key), which uvicorn leaves out"),
    **{f"tests/protocols/test_websocket.py::test_server_reject_connection{name}[[]*": (
        DIFFERENCE, "websocket.disconnect carries 'reason' (the ASGI spec's key), which uvicorn leaves out")
        for name in ("", "_with_response", "_with_multibody_response")},
    "tests/protocols/test_websocket.py::test_default_server_headers*": (DIFFERENCE, "the product's name: server: fastasgi"),
    "tests/protocols/test_websocket.py::test_multiple_server_header*": (
        DIFFERENCE, "app-sent Server headers replace the default one: fastasgi never sends its own Server "
        "beside the app's (RFC 9110 10.2.4: one product list); uvicorn sends 'uvicorn' first"),
}

#: applicable tests that passed when the list above was last brought up to date (99, less the
#: intermittent one); fewer is a regression even if the failing test were somehow listed
RECORDED_PASSED = 154


class SuiteUnavailable(Exception):
    """The pinned sdist cannot be had (PyPI unreachable, or a file with another checksum)."""


def classify(nodeid: str) -> tuple[str, str]:
    for pattern, status, reason in CLASSIFICATION:
        if fnmatch.fnmatchcase(nodeid, pattern):
            return status, reason
    # a test a new table row has not covered yet is run: it is shown, not hidden
    return APPLICABLE, "not in the table"


def known_failure(nodeid: str) -> tuple[str, str] | None:
    for pattern, entry in KNOWN_FAILURES.items():
        if fnmatch.fnmatchcase(nodeid, pattern):
            return entry
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    # the user cache, not the pytest cache: cibuildwheel runs pytest with the cache provider
    # off, and one download then serves every run on the machine
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastasgi-tests"


def fetch_sdist(directory: Path | None = None) -> Path:
    """The verified sdist, from the cache or else downloaded (with pip, which uses the
    machine's index, proxy and certificate settings) into it."""
    directory = directory or cache_dir()
    cached = directory / SDIST_NAME
    if cached.is_file() and _sha256(cached) == SDIST_SHA256:
        return cached
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "--dest", tmp, f"uvicorn=={UVICORN_VERSION}"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired as exc:
            raise SuiteUnavailable(f"pip download of {SDIST_NAME} timed out after 180 s") from exc
        fetched = Path(tmp) / SDIST_NAME
        if done.returncode != 0 or not fetched.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SuiteUnavailable(f"pip could not download {SDIST_NAME} (exit {done.returncode}): {last}")
        digest = _sha256(fetched)
        if digest != SDIST_SHA256:
            raise SuiteUnavailable(f"{SDIST_NAME} has SHA-256 {digest}, expected {SDIST_SHA256}")
        os.replace(fetched, cached)
    return cached


def unpack_tests(sdist: Path, dest: Path) -> Path:
    """Extract the sdist's tests/ and pyproject.toml (its pytest settings) under dest; uvicorn's
    own package is left out so that nothing can import it instead of the shim."""
    top = f"uvicorn-{UVICORN_VERSION}/"
    with tarfile.open(sdist) as tar:
        members = [
            m for m in tar.getmembers()
            if m.name.startswith(top + "tests/") or m.name == top + "pyproject.toml"
        ]
        tar.extractall(dest, members=members, filter="data")
    return dest / top.rstrip("/")


# -------------------------------------------------------------------------------------------
# The shim: a `uvicorn` package whose public names are fastasgi's. Internal names that the test
# modules import at their top (protocol classes, lifespan classes, ...) exist as stand-ins so
# the modules import; a test that would use one is classified internal and not run, and a
# stand-in that is called anyway raises, so a misclassified test fails loudly.

_SHIM: dict[str, str] = {
    "__init__.py": '''
        """uvicorn's top-level names, as fastasgi's (generated by fastasgi's test suite)."""
        from uvicorn import _shim  # noqa: F401  (must run before any Config is built)
        from fastasgi import __version__
        from uvicorn.config import Config
        from uvicorn.server import Server
        from uvicorn.main import main, run

        __all__ = ["Config", "Server", "__version__", "main", "run"]
    ''',
    "_shim.py": '''
        """What makes uvicorn's tests speak to fastasgi, and stand-ins for uvicorn internals."""
        import functools

        import fastasgi.config
        import fastasgi.logging


        class Internal:
            """A uvicorn class with no fastasgi counterpart: importable, never usable."""

            #: for protocol classes: the fastasgi (setting, value) the class stands for
            fastasgi_setting = None

            def __init__(self, *args, **kwargs):
                raise NotImplementedError(f"{type(self).__name__} is uvicorn-internal; fastasgi has none")


        def standin(name, setting=None):
            return type(name, (Internal,), {"fastasgi_setting": setting})


        # uvicorn's tests pass protocol classes as Config(http=..., ws=...); fastasgi takes the
        # names of its own implementations, so each stand-in class is translated to its setting.
        _config_init = fastasgi.config.Config.__init__


        @functools.wraps(_config_init)  # keeps the __signature__ that Config publishes
        def _init(self, app, **settings):
            for name in ("http", "ws"):
                value = settings.get(name)
                if isinstance(value, type) and issubclass(value, Internal) and value.fastasgi_setting:
                    settings[name] = value.fastasgi_setting
            _config_init(self, app, **settings)


        fastasgi.config.Config.__init__ = _init


        class _LoggerNames(dict):
            """uvicorn's logger names resolve to fastasgi's entries: uvicorn's conftest turns
            propagation on with LOGGING_CONFIG["loggers"]["uvicorn"]["propagate"] = True so that
            caplog sees the server's records; this turns it on for fastasgi's logger."""

            def __missing__(self, key):
                if key == "uvicorn" or key.startswith("uvicorn."):
                    return self["fastasgi" + key[len("uvicorn"):]]
                raise KeyError(key)


        _loggers = fastasgi.logging.LOGGING_CONFIG["loggers"]
        if not isinstance(_loggers, _LoggerNames):
            fastasgi.logging.LOGGING_CONFIG["loggers"] = _LoggerNames(_loggers)
    ''',
    # the module object itself is fastasgi's command line, so mock.patch.object(uvicorn.main,
    # "run") replaces the run() that the click command calls, as it does in uvicorn
    "main.py": '''
        import sys

        import fastasgi.cli

        sys.modules[__name__] = fastasgi.cli
    ''',
    "config.py": '''
        from typing import Any

        from fastasgi.config import STARTUP_FAILURE, Config
        from fastasgi.logging import LOGGING_CONFIG
        from uvicorn._shim import standin

        # the names of uvicorn's implementations (test_http.py reads the keys at import time)
        WS_PROTOCOLS = {"auto": None, "none": None, "websockets": None, "websockets-sansio": None, "wsproto": None}
        LoopFactoryType = Any
        UvicornDeprecationWarning = type("UvicornDeprecationWarning", (DeprecationWarning,), {})
    ''',
    "server.py": '''
        from fastasgi.server import HANDLED_SIGNALS, Server
        from uvicorn._shim import standin

        ServerState = standin("ServerState")
    ''',
    "supervisors/__init__.py": '''
        from fastasgi.supervisors import ChangeReload, Multiprocess
    ''',
    "importer.py": '''
        from fastasgi._importer import import_from_string
    ''',
    # type aliases only: every name is Any
    "_types.py": '''
        from typing import Any


        def __getattr__(name):
            return Any
    ''',
    "middleware/__init__.py": "",
    "middleware/proxy_headers.py": '''
        from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware
        from uvicorn._shim import standin

        _TrustedHosts = standin("_TrustedHosts")
    ''',
    "middleware/wsgi.py": '''
        from uvicorn._shim import standin

        WSGIMiddleware = standin("WSGIMiddleware")
    ''',
    "lifespan/__init__.py": "",
    "lifespan/on.py": 'from uvicorn._shim import standin\n\nLifespanOn = standin("LifespanOn")\n',
    "lifespan/off.py": 'from uvicorn._shim import standin\n\nLifespanOff = standin("LifespanOff")\n',
    "protocols/__init__.py": "",
    "protocols/http/__init__.py": "",
    # fastasgi refuses --http h11/httptools by name (it has its own parser): "auto" is it
    "protocols/http/h11_impl.py": 'from uvicorn._shim import standin\n\nH11Protocol = standin("H11Protocol", "auto")\n',
    "protocols/http/httptools_impl.py": '''
        from uvicorn._shim import standin

        HttpToolsProtocol = standin("HttpToolsProtocol", "auto")
    ''',
    # uvicorn's read-pause threshold; the tests use it only to size a body that crosses it
    "protocols/http/flow_control.py": "HIGH_WATER_LIMIT = 65536\n",
    "protocols/websockets/__init__.py": "",
    "protocols/websockets/wsproto_impl.py": 'from uvicorn._shim import standin\n\nWSProtocol = standin("WSProtocol", "auto")\n',
    "protocols/websockets/websockets_sansio_impl.py": '''
        from uvicorn._shim import standin

        WebSocketsSansIOProtocol = standin("WebSocketsSansIOProtocol", "websockets-sansio")
    ''',
}


def write_shim(dest: Path) -> Path:
    """Write the shim package under dest (dest goes first on the subprocess's path)."""
    for name, source in _SHIM.items():
        path = dest / "uvicorn" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    return dest


# -------------------------------------------------------------------------------------------
# Running


@dataclass
class SuiteResult:
    total: int = 0
    #: nodeid -> (status, reason) of every collected test
    classified: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: nodeid -> "passed" | "failed" | "skipped" (applicable tests only), with the failure text
    outcomes: dict[str, str] = field(default_factory=dict)
    longrepr: dict[str, str] = field(default_factory=dict)
    returncode: int = 0
    output: str = ""

    @property
    def applicable(self) -> list[str]:
        return [n for n, (status, _) in self.classified.items() if status == APPLICABLE]

    @property
    def passed(self) -> list[str]:
        return [n for n in self.applicable if self.outcomes.get(n) == "passed"]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for status, _ in self.classified.values():
            counts[status] = counts.get(status, 0) + 1
        skipped = [n for n in self.applicable if self.outcomes.get(n) == "skipped"]
        lines = [
            f"uvicorn {UVICORN_VERSION} suite against fastasgi: {len(self.passed)} passed / "
            f"{len(self.applicable)} applicable / {self.total} total",
            "  not run: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in (INTERNAL, DUPLICATE, OUT_OF_SCOPE)),
            f"  skipped by uvicorn's own guards: {len(skipped)}",
        ]
        for nodeid in self.applicable:
            outcome = self.outcomes.get(nodeid, "not run")
            if outcome in ("passed", "skipped"):
                continue
            cause, reason = known_failure(nodeid) or ("UNEXPECTED", "not in KNOWN_FAILURES")
            lines.append(f"  {outcome}: {nodeid} [{cause}] {reason}")
        return "\n".join(lines)


def run_suite(sdist: Path, workdir: Path, timeout: float = 240) -> SuiteResult:
    """Run the applicable tests of SUITE_FILES in one pytest subprocess and return the result."""
    root = unpack_tests(sdist, workdir / "suite")
    shim = write_shim(workdir / "shim")
    report = workdir / "report.json"
    import fastasgi  # the fastasgi under test: the source tree or the installed wheel alike

    fastasgi_root = str(Path(fastasgi.__file__).resolve().parent.parent)
    env = dict(os.environ)
    # shim first (before site-packages, where the real uvicorn is installed), then tests/ for
    # the plugin (support.uvicorn_suite_plugin), then fastasgi; uvicorn's tests package is found from the rootdir by pytest
    env["PYTHONPATH"] = os.pathsep.join([str(shim), str(Path(__file__).resolve().parent.parent), fastasgi_root])
    env["UVICORN_SUITE_REPORT"] = str(report)
    # the suite's own tests set these; one leaking from the caller would change the outcomes
    for name in list(env):
        if name.startswith(("UVICORN_", "FASTASGI_")) and not name.startswith("UVICORN_SUITE_"):
            del env[name]
    command = [
        sys.executable, "-m", "pytest",
        "-c", str(root / "pyproject.toml"), "--rootdir", str(root),
        # uvicorn's addopts run 8 xdist workers; here one process, and its other settings
        # (warnings as errors, strict xfail, the faulthandler timeout) stay as uvicorn has them
        "-o", "addopts=--strict-config --strict-markers",
        "-p", "no:cacheprovider", "-p", "support.uvicorn_suite_plugin",
        # uvicorn's tests that fail early under fastasgi (no Config.bind_socket) leave their own
        # sockets open; with warnings as errors, the ResourceWarning of their collection would
        # fail whichever later test the garbage collector happens to run in
        "-W", "ignore::ResourceWarning", "-W", "ignore::pytest.PytestUnraisableExceptionWarning",
        "-q", "--no-header", "-rfE", "--tb=short",
        *SUITE_FILES,
    ]
    try:
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise AssertionError(f"uvicorn's suite did not finish in {timeout} s:\n{out[-5000:]}") from exc
    result = SuiteResult(returncode=done.returncode, output=done.stdout + done.stderr)
    if not report.is_file():
        raise AssertionError(f"the uvicorn suite wrote no report (exit {done.returncode}):\n{result.output[-5000:]}")
    data = json.loads(report.read_text())
    if data["collect_errors"]:
        # a test module that does not import under the shim hides all its tests: never a pass
        errors = "\n".join(f"{k}:\n{v}" for k, v in data["collect_errors"].items())
        raise AssertionError(f"uvicorn's test modules failed to import under the shim:\n{errors[-6000:]}")
    result.total = data["total"]
    result.classified = {k: tuple(v) for k, v in data["classified"].items()}
    result.outcomes = data["outcomes"]
    result.longrepr = data["longrepr"]
    return result

