"""Every setting, declared once: the table ``Config``, the command line and the environment
are built from.

An entry of ``Settings`` below is one setting. Its attribute name is ``Config``'s keyword and
attribute; the ``setting(...)`` call says everything else: the default, the kind of value
and its bounds or choices, the ``--help`` text (no help: a Python-only setting, without a
flag), the flag when it is not ``--`` plus the name with dashes, and the gunicorn setting
the gunicorn worker class reads it from. From the table:

- ``Config(app, **kwargs)`` takes each name as a keyword, with its default; ``Config``
  checks kinds, bounds and choices from it, in one-line errors naming the flag;
- ``fastasgi --help`` lists one click option per entry with a help text, in table order;
- each option also reads ``FASTASGI_<NAME>`` from the environment (``--reload-dir``:
  ``FASTASGI_RELOAD_DIRS``, the keyword's name, as click's automatic names have always been);
  a uvicorn setting (``uvicorn=True``) then ``UVICORN_<NAME>``, the name uvicorn's click
  gives it (``auto_envvar_prefix="UVICORN"`` and the same keyword), so that an image made
  for uvicorn keeps its settings; ``FASTASGI_<NAME>`` wins;
- ``fastasgi._defaults`` exports every default under the upper-case name (``PORT``) for the
  modules that read defaults by name, the compiled core among them;
- ``fastasgi.workers`` maps gunicorn's settings by the ``gunicorn`` column.

**Off.** A setting that can be off (``off=True``: limits, timeouts, the admin listener) is
``None`` in Python and ``off`` on the command line and in ``FASTASGI_*`` variables; ``--help``
shows ``[default: off]``. The other spellings in use are taken as input and become ``None``:
``"off"`` and ``"none"`` (any case) from Python too, and 0 for the three request timeouts,
where 0 has always meant off (``zero_off=True``). Elsewhere 0 keeps its meaning: a real
value (``--limit-request-body 0``: no body; ``--timeout-graceful-shutdown 0``: do not wait)
or one refused (limits of at least 1). Choices keep uvicorn's words (``--ws none``,
``--lifespan off``), and ``--proxy-protocol`` takes gunicorn's old booleans (true: ``auto``).

This module imports only the standard library: ``fastasgi._defaults``, which the compiled
core imports, is built from it. Defaults that live in modules importing ``_defaults``
(the log config) are named by ``default_from`` and imported when first asked for.
"""

from __future__ import annotations

import importlib
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

#: how the environment names a setting: FASTASGI_LIMIT_CONCURRENCY (uvicorn: UVICORN_...)
ENV_PREFIX = "FASTASGI"
#: uvicorn's prefix (its click command's auto_envvar_prefix), read after ENV_PREFIX's
UVICORN_ENV_PREFIX = "UVICORN"

#: the words for off, on the command line, in FASTASGI_* variables and from Python; the
#: first is the one --help shows
OFF_WORDS = ("off", "none")

LIFESPAN_MODES = ("auto", "on", "off")
LOOP_TYPES = ("none", "auto", "asyncio", "uvloop")
WS_TYPES = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
HTTP_TYPES = ("auto", "h11", "httptools", "h2")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
#: in the order of the core's HEADER_MAP_* values (src/fastasgi/_http/_core.pxd)
HEADER_MAPS = ("drop", "refuse", "dangerous")
PROXY_PROTOCOLS = ("off", "v1", "v2", "auto")
LOG_FORMATS = ("text", "json")
#: fastasgi.logging.LOG_LEVELS's names (that module imports this one; a test keeps them equal)
LOG_LEVEL_NAMES = ("critical", "error", "warning", "info", "debug", "trace")

#: --forwarded-allow-ips when neither the flag nor $FORWARDED_ALLOW_IPS is set
FORWARDED_ALLOW_IPS = "127.0.0.1,::1"

#: kinds of value: what Config checks and which click type the option gets
#:   str, int, float (bounds: minimum, maximum, min_open), choice (choices), bool (a value:
#:   --ws-per-message-deflate false), flag (--reload: given or not), switch (--x/--no-x),
#:   path (an existing file or directory), file (an existing file), object (Python only)
KINDS = ("str", "int", "float", "choice", "bool", "flag", "switch", "path", "file", "object")


@dataclass(frozen=True)
class Setting:
    """One entry of the table; see the module docstring and ``setting()``."""

    name: str
    default: Any
    kind: str
    help: str | None
    since: str
    flags: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    choices: tuple[str, ...] = ()
    cli_choices: tuple[str, ...] | None = None
    import_string: bool = False
    cli_kind: str | None = None
    off: bool = False
    zero_off: bool = False
    multiple: bool = False
    metavar: str | None = None
    cli_default: Any = None
    has_cli_default: bool = False
    show_default: bool = True
    envvars: tuple[str, ...] = ()
    convert: Callable[[Any], Any] | None = None
    default_from: str | None = None
    gunicorn: str | None = None
    uvicorn: bool = False

    @property
    def flag(self) -> str:
        """The flag that error messages name."""
        return self.flags[0] if self.flags else "--" + self.name.replace("_", "-")

    @property
    def on_command_line(self) -> bool:
        return self.help is not None

    @property
    def envvar_names(self) -> tuple[str, ...]:
        return self.envvars or (f"{ENV_PREFIX}_{self.name.upper()}",)

    @property
    def uvicorn_envvar(self) -> str | None:
        """The variable uvicorn reads this setting from, the fallback for ``envvar_names``:
        click names it after the keyword, which is uvicorn's (``UVICORN_RELOAD_DIRS``,
        ``UVICORN_HEADERS``). None for fastasgi's own settings and the Python-only ones."""
        if not (self.uvicorn and self.on_command_line):
            return None
        return f"{UVICORN_ENV_PREFIX}_{self.name.upper()}"

    @property
    def optional(self) -> bool:
        """Whether None is a value: off, or "not given" (--fd, --workers, --log-level)."""
        return self.off or self.default is None

    def get_default(self) -> Any:
        """Config's default (imported when it lives in a module that imports this one)."""
        if self.default_from is not None:
            module, _, attribute = self.default_from.partition(":")
            return getattr(importlib.import_module(module), attribute)
        return self.default

    def get_cli_default(self) -> Any:
        """The command line's default: Config's, unless uvicorn's command line has another
        (--app-dir ""; --ssl-version 17, not the enum member)."""
        return self.cli_default if self.has_cli_default else self.get_default()

    def normalise(self, value: Any) -> Any:
        """A value as Config keeps it: off spelled None, then the entry's conversion."""
        if self.off and is_off(value, zero=self.zero_off):
            value = None
        if self.convert is not None:
            value = self.convert(value)
        return value


def is_off(value: Any, zero: bool = False) -> bool:
    """Whether ``value`` is a spelling of off (see the module docstring)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in OFF_WORDS
    if zero and not isinstance(value, bool) and isinstance(value, (int, float)):
        return value == 0
    return False


_CLI_DEFAULT_UNSET = object()


def setting(
    default: Any,
    kind: str,
    help: str | None,
    *,
    since: str,
    cli_default: Any = _CLI_DEFAULT_UNSET,
    **fields: Any,
) -> Any:
    """An entry of ``Settings``; the attribute's name is filled in by ``_collect``. Typed
    ``Any`` so that the attribute's annotation (``port: int = setting(...)``) is the one
    mypy sees on ``Config``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    has_cli_default = cli_default is not _CLI_DEFAULT_UNSET
    return Setting(
        name="",
        default=default,
        kind=kind,
        help=help,
        since=since,
        cli_default=cli_default if has_cli_default else None,
        has_cli_default=has_cli_default,
        **fields,
    )


def _fspath(value: Any) -> Any:
    return os.fspath(value) if value is not None else None


def _as_list(value: Any) -> list[Any]:
    # a lone string is one value (--bind "unix:/run/app.sock"), not its characters
    return [value] if isinstance(value, str) else list(value or [])


def _proxy_protocol_mode(value: Any) -> Any:
    # gunicorn's proxy_protocol was a boolean before 24.1: on meant PROXY v1 when the
    # connection starts with one, which auto covers
    if isinstance(value, bool) or value is None:
        return "auto" if value else "off"
    return value


_HEAD_TIMEOUT_HELP = (
    "Seconds to receive a whole request head once it has begun (slowloris defence); then 408"
    " and close. off (or 0) turns it off."
)


class Settings:
    """The table, in ``fastasgi --help``'s order; ``Config`` inherits the annotations (the
    attribute types). Entries with ``uvicorn=True`` are uvicorn's: same name, default and
    meaning, and their help text is uvicorn's where users know it."""

    host: str | None = setting("127.0.0.1", "str", "Bind socket to this host.", since="0.1.0", uvicorn=True)
    port: int = setting(
        8000,
        "int",
        "Bind socket to this port. If 0, an available port will be picked.",
        minimum=0,
        maximum=65535,
        since="0.1.0",
        uvicorn=True,
    )
    bind: list[str] = setting(
        None,
        "str",
        "Listen on this address (repeatable; replaces --host/--port): HOST:PORT, [IPV6]:PORT,"
        " unix:PATH or fd://N.",
        flags=("--bind", "-b"),
        multiple=True,
        convert=_as_list,
        since="0.1.0",
    )
    admin_bind: str | None = setting(
        None,
        "str",
        "Serve the admin listener (GET /metrics: Prometheus) on this address, never the app's:"
        " HOST:PORT, [IPV6]:PORT or unix:PATH. With --workers the supervisor serves it, with the"
        " counts of every worker.",
        off=True,
        since="0.1.0",
    )
    uds: str | None = setting(
        None, "str", "Bind to a UNIX domain socket.", convert=_fspath, since="0.1.0", uvicorn=True
    )
    fd: int | None = setting(
        None, "int", "Bind to socket from this file descriptor.", minimum=0, since="0.1.0", uvicorn=True
    )
    reload: bool = setting(
        False, "flag", "Enable auto-reload (needs watchfiles).", since="0.1.0", uvicorn=True
    )
    reload_dirs: list[str] | str | None = setting(
        None,
        "path",
        "Set reload directories explicitly, instead of using the current working directory.",
        flags=("--reload-dir",),
        multiple=True,
        since="0.1.0",
        uvicorn=True,
    )
    reload_includes: list[str] | str | None = setting(
        None,
        "str",
        "Set glob patterns to include while watching for files. Includes '*.py' by default;"
        " these defaults can be overridden with `--reload-exclude`.",
        flags=("--reload-include",),
        multiple=True,
        since="0.1.0",
        uvicorn=True,
    )
    reload_excludes: list[str] | str | None = setting(
        None,
        "str",
        "Set glob patterns to exclude while watching for files. Includes '.*, .py[cod], .sw.*, ~*'"
        " by default; these defaults can be overridden with `--reload-include`.",
        flags=("--reload-exclude",),
        multiple=True,
        since="0.1.0",
        uvicorn=True,
    )
    reload_delay: float = setting(
        0.25,
        "float",
        "Delay between previous and next check if application needs to be reloaded.",
        minimum=0,
        since="0.1.0",
        uvicorn=True,
    )
    # None: $WEB_CONCURRENCY, else 1 (read by Config after --env-file, as uvicorn)
    workers: int | None = setting(
        None,
        "int",
        "Number of worker processes. Defaults to the $WEB_CONCURRENCY environment variable if available,"
        " or 1. Not valid with --reload.",
        minimum=1,
        since="0.1.0",
        uvicorn=True,
    )
    reuse_port: bool = setting(
        False,
        "flag",
        "Give each worker a listener of its own (SO_REUSEPORT): the kernel spreads connections over them.",
        since="0.1.0",
    )
    limit_max_requests: int | None = setting(
        None,
        "int",
        "Maximum number of requests to service before terminating the process (a worker is replaced).",
        minimum=1,
        off=True,
        gunicorn="max_requests",
        since="0.1.0",
        uvicorn=True,
    )
    limit_max_requests_jitter: int = setting(
        0,
        "int",
        "Maximum jitter to add to limit_max_requests. Staggers worker restarts to avoid all workers"
        " restarting simultaneously.",
        minimum=0,
        since="0.1.0",
        uvicorn=True,
    )
    # On: no HTTP/1.1 client sends the HTTP/2 preface, so HTTP/1.1 is served as before
    # (uvicorn's --http2 is off: the one default that differs on purpose).
    http2: bool = setting(
        True,
        "switch",
        "Serve HTTP/2: h2c on a cleartext listener (a connection that starts with the HTTP/2"
        " preface), h2 over TLS (ALPN). HTTP/1.1 clients are served as before either way.",
        since="0.1.0",
    )
    # RFC 9113 6.5.2: 100 is the RFC's recommended minimum and nginx's default; more streams
    # are refused with RST_STREAM(REFUSED_STREAM)
    http2_max_concurrent_streams: int = setting(
        100,
        "int",
        "Streams one HTTP/2 client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).",
        minimum=1,
        maximum=2**31 - 1,
        since="0.1.0",
    )
    # 1 MiB, granian's default: the protocol's 64 KiB stalls uploads on every round trip.
    # RFC 9113 6.9.1: windows are at most 2^31-1.
    http2_initial_stream_window_size: int = setting(
        1024 * 1024,
        "int",
        "Request body bytes an HTTP/2 stream may send ahead of the app reading them.",
        minimum=1,
        maximum=2**31 - 1,
        since="0.1.0",
    )
    # the most one connection can make the server hold; never below the protocol's 65535
    http2_initial_connection_window_size: int = setting(
        4 * 1024 * 1024,
        "int",
        "Request body bytes all streams of one HTTP/2 connection may send ahead of their apps.",
        minimum=65535,
        maximum=2**31 - 1,
        since="0.1.0",
    )
    # the protocol's minimum, 16 KiB, as nginx and granian; RFC 9113 4.2 caps it at 2^24-1
    http2_max_frame_size: int = setting(
        16384,
        "int",
        "The largest HTTP/2 frame payload accepted (SETTINGS_MAX_FRAME_SIZE).",
        minimum=16384,
        maximum=2**24 - 1,
        since="0.1.0",
    )
    # None is not off here: one setting bounds a request head on both protocols
    http2_max_headers_size: int | None = setting(
        None,
        "int",
        "The largest HTTP/2 request header list (SETTINGS_MAX_HEADER_LIST_SIZE); more gets 431."
        "  [default: --limit-request-head-size]",
        minimum=1,
        maximum=2**31 - 1,
        since="0.1.0",
    )
    # The jitters spread the workers' limits apart, so that workers that grow (or started)
    # alike are not all recycled at the same moment.
    limit_max_memory: int | None = setting(
        None,
        "int",
        "Recycle a worker whose resident memory (RSS) exceeds this many MiB: its replacement starts"
        " and is ready before it stops accepting. Runs the supervisor even with one worker. Linux.",
        minimum=1,
        off=True,
        metavar="MIB",
        since="0.1.0",
    )
    limit_max_memory_jitter: int = setting(
        0,
        "int",
        "Maximum jitter to add to limit_max_memory, per worker.",
        minimum=0,
        metavar="MIB",
        since="0.1.0",
    )
    limit_worker_lifetime: float | None = setting(
        None,
        "float",
        "Recycle a worker after it has served this long: its replacement starts and is ready before"
        " it stops accepting. Runs the supervisor even with one worker.",
        minimum=0,
        min_open=True,
        off=True,
        metavar="SECONDS",
        since="0.1.0",
    )
    limit_worker_lifetime_jitter: float = setting(
        0.0,
        "float",
        "Maximum jitter to add to limit_worker_lifetime, per worker.",
        minimum=0,
        metavar="SECONDS",
        since="0.1.0",
    )
    timeout_worker_healthcheck: float = setting(
        5,
        "float",
        "Maximum number of seconds to wait for a worker to respond to a healthcheck"
        " (its event loop's heartbeat, once it serves).",
        minimum=0,
        min_open=True,
        since="0.1.0",
        uvicorn=True,
    )
    # "none" (asyncio's default loop) is accepted but not listed, as uvicorn
    loop: str = setting(
        "auto",
        "choice",
        'Event loop implementation (auto: uvloop when installed), or a "module:attribute" loop factory.',
        choices=LOOP_TYPES,
        cli_choices=("auto", "asyncio", "uvloop"),
        import_string=True,
        since="0.1.0",
        uvicorn=True,
    )
    # any text on the command line, so that --http h11 gets Config's "not supported" message
    http: str = setting(
        "auto",
        "choice",
        "HTTP protocol implementation. fastasgi has its own (llhttp, nghttp2): h11 and httptools "
        "are refused. h2: every connection is HTTP/2 (prior knowledge in cleartext, ALPN h2 over "
        "TLS), never HTTP/1.1; an invalid connection preface gets GOAWAY(PROTOCOL_ERROR).",
        choices=HTTP_TYPES,
        cli_kind="str",
        metavar="[auto|h11|httptools|h2]",
        since="0.1.0",
        uvicorn=True,
    )
    ws: str = setting(
        "auto",
        "choice",
        "WebSocket protocol implementation. fastasgi has one, its own: auto, websockets and "
        "websockets-sansio select it; none serves upgrade requests as plain HTTP.",
        choices=WS_TYPES,
        cli_choices=("auto", "websockets", "websockets-sansio", "none"),
        since="0.1.0",
        uvicorn=True,
    )
    ws_max_size: int = setting(
        16 * 1024 * 1024,
        "int",
        "WebSocket max size message in bytes.",
        minimum=1,
        since="0.1.0",
        uvicorn=True,
    )
    ws_max_queue: int = setting(
        32,
        "int",
        "The maximum length of the WebSocket message queue.",
        minimum=1,
        since="0.1.0",
        uvicorn=True,
    )
    ws_ping_interval: float | None = setting(
        20.0,
        "float",
        "WebSocket ping interval in seconds.",
        minimum=0,
        min_open=True,
        off=True,
        since="0.1.0",
        uvicorn=True,
    )
    ws_ping_timeout: float | None = setting(
        20.0,
        "float",
        "WebSocket ping timeout in seconds.",
        minimum=0,
        min_open=True,
        off=True,
        since="0.1.0",
        uvicorn=True,
    )
    ws_per_message_deflate: bool = setting(
        True, "bool", "WebSocket per-message-deflate compression.", since="0.1.0", uvicorn=True
    )
    # zlib's default level, 6: what uvicorn (the websockets package) compresses with
    ws_per_message_deflate_level: int = setting(
        6,
        "int",
        "zlib compression level of per-message-deflate: 1 is the fastest, 9 the smallest output, "
        "6 (the default) what uvicorn compresses with.",
        minimum=0,
        maximum=9,
        since="0.1.0",
    )
    interface: str = setting(
        "auto",
        "choice",
        "Select ASGI3 or ASGI2 as the application interface (wsgi is refused).",
        choices=INTERFACES,
        since="0.1.0",
        uvicorn=True,
    )
    env_file: str | os.PathLike[str] | None = setting(
        None,
        "file",
        "Environment configuration file (FASTASGI_* variables in it set options too).",
        since="0.1.0",
        uvicorn=True,
    )
    # The command line's None becomes this default in cli.main; None from Python leaves
    # logging as it is (the gunicorn worker: gunicorn owns logging).
    log_config: Any = setting(
        None,
        "file",
        "Logging configuration file. Supported formats: .ini, .json, .yaml.",
        default_from="fastasgi.logging:LOGGING_CONFIG",
        cli_default=None,
        since="0.1.0",
        uvicorn=True,
    )
    lifespan: str = setting(
        "auto", "choice", "Lifespan implementation.", choices=LIFESPAN_MODES, since="0.1.0", uvicorn=True
    )
    # a name (any case) or a logging level number: Config checks it itself
    log_level: str | int | None = setting(
        None,
        "str",
        "Log level. [default: info]",
        cli_choices=LOG_LEVEL_NAMES,
        since="0.1.0",
        uvicorn=True,
    )
    access_log: bool = setting(
        True, "switch", "Enable/Disable access log.", show_default=False, since="0.1.0", uvicorn=True
    )
    # None: uvicorn's line
    access_log_format: str | None = setting(
        None,
        "str",
        "Access log line, with atoms such as %(h)s %(r)s %(s)s %(b)s %(M)s %({header}i)s"
        " (see the README). [default: uvicorn's line]",
        since="0.1.0",
    )
    # the default log config only: a log config of one's own says how lines look
    log_format: str = setting(
        "text",
        "choice",
        "Log lines as text, or one JSON object per line (json: time, level, logger, message; access"
        " lines add client, method, path, status, bytes, request_time...; with --access-log-format"
        " the access line is the message). Has no effect with --log-config.",
        choices=LOG_FORMATS,
        since="0.1.0",
    )
    use_colors: bool | None = setting(
        None, "switch", "Enable/Disable colorized logging.", since="0.1.0", uvicorn=True
    )
    proxy_headers: bool = setting(
        True,
        "switch",
        "Enable/Disable X-Forwarded-For/-Proto/-Host/-Port and Forwarded (RFC 7239) from trusted"
        " proxies to populate client, scheme and server.  [default: enabled]",
        show_default=False,
        since="0.1.0",
        uvicorn=True,
    )
    server_header: bool = setting(
        True,
        "switch",
        "Enable/Disable default Server header.",
        show_default=False,
        since="0.1.0",
        uvicorn=True,
    )
    date_header: bool = setting(
        True,
        "switch",
        "Enable/Disable default Date header.",
        show_default=False,
        since="0.1.0",
        uvicorn=True,
    )
    # None: $FORWARDED_ALLOW_IPS, else FORWARDED_ALLOW_IPS (read by Config after --env-file)
    forwarded_allow_ips: list[str] | str | None = setting(
        None,
        "str",
        "Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket path) to"
        " trust with proxy headers. Defaults to the $FORWARDED_ALLOW_IPS environment variable if"
        f" available, or {FORWARDED_ALLOW_IPS!r}. The literal '*' means trust everything.",
        gunicorn="forwarded_allow_ips",
        since="0.1.0",
        uvicorn=True,
    )
    # "off" is a mode here, the one spelling of it; gunicorn's booleans are taken too
    proxy_protocol: str = setting(
        "off",
        "choice",
        "Read a PROXY protocol header (haproxy's v1 text or v2 binary) at the start of every"
        " connection, only from --forwarded-allow-ips peers: it sets the client and server addresses."
        " auto accepts v1, v2 or no header. A bad or untrusted header closes the connection.",
        choices=PROXY_PROTOCOLS,
        convert=_proxy_protocol_mode,
        gunicorn="proxy_protocol",
        since="0.1.0",
    )
    headers: list[Any] = setting(
        None,
        "str",
        "Specify custom default HTTP response headers as a Name:Value pair (repeatable).",
        flags=("--header",),
        multiple=True,
        # named after the flag, and after the keyword as click (and uvicorn) would
        envvars=(f"{ENV_PREFIX}_HEADER", f"{ENV_PREFIX}_HEADERS"),
        convert=_as_list,
        since="0.1.0",
        uvicorn=True,
    )
    limit_concurrency: int | None = setting(
        None,
        "int",
        "Maximum number of concurrent connections or tasks to allow, before issuing HTTP 503 responses.",
        minimum=1,
        off=True,
        since="0.1.0",
        uvicorn=True,
    )
    backlog: int = setting(
        2048,
        "int",
        "Maximum number of connections to hold in backlog.",
        minimum=1,
        gunicorn="backlog",
        since="0.1.0",
        uvicorn=True,
    )
    # 0 is a limit (no body at all), not off
    limit_request_body: int | None = setting(
        None,
        "int",
        "Maximum bytes in a request body; larger requests get 413.",
        minimum=0,
        off=True,
        since="0.1.0",
    )
    # Heads are a few KB and arrive in one or two packets even on a slow mobile link; a client
    # still sending one after 30 s is trickling it to hold the connection (slowloris). Apache's
    # mod_reqtimeout allows 20-40 s, nginx's client_header_timeout 60 s.
    timeout_request_head: float | None = setting(
        30.0, "float", _HEAD_TIMEOUT_HELP, minimum=0, off=True, zero_off=True, since="0.1.0"
    )
    # nginx's client_body_timeout (the same rule: between two reads) is 60 s
    timeout_request_body: float | None = setting(
        60.0,
        "float",
        "Seconds without a request body byte while the app waits for the body; then 408 and close."
        " off (or 0) turns it off.",
        minimum=0,
        off=True,
        zero_off=True,
        since="0.1.0",
    )
    timeout_request: float | None = setting(
        None,
        "float",
        "Seconds a request may take, from its head to the end of its response; then the app"
        " is cancelled and the client gets 504 (the connection is closed if the response had begun)."
        " WebSockets are exempt once accepted.",
        minimum=0,
        off=True,
        zero_off=True,
        since="0.1.0",
    )
    # gunicorn's TLS settings are read only when gunicorn serves TLS (see fastasgi.workers)
    ssl_keyfile: str | os.PathLike[str] | None = setting(
        None, "str", "SSL key file", gunicorn="keyfile", since="0.1.0", uvicorn=True
    )
    ssl_certfile: str | os.PathLike[str] | None = setting(
        None, "str", "SSL certificate file", gunicorn="certfile", since="0.1.0", uvicorn=True
    )
    ssl_keyfile_password: str | None = setting(
        None, "str", "SSL keyfile password", since="0.1.0", uvicorn=True
    )
    # no bounds here: ssl.SSLContext says which numbers it takes (Config checks x>=0)
    ssl_version: int = setting(
        ssl.PROTOCOL_TLS_SERVER,
        "int",
        "SSL version to use (see stdlib ssl module's)",
        cli_default=int(ssl.PROTOCOL_TLS_SERVER),
        since="0.1.0",
        uvicorn=True,
    )
    ssl_cert_reqs: int = setting(
        ssl.CERT_NONE,
        "int",
        "Whether client certificate is required (see stdlib ssl module's): 0 none, 1 optional, 2 required",
        minimum=0,
        maximum=2,
        cli_default=int(ssl.CERT_NONE),
        gunicorn="cert_reqs",
        since="0.1.0",
        uvicorn=True,
    )
    ssl_ca_certs: str | os.PathLike[str] | None = setting(
        None, "str", "CA certificates file", gunicorn="ca_certs", since="0.1.0", uvicorn=True
    )
    ssl_ciphers: str | None = setting(
        None,
        "str",
        "Ciphers to use (see stdlib ssl module's). Defaults to OpenSSL's safe defaults.",
        gunicorn="ciphers",
        since="0.1.0",
        uvicorn=True,
    )
    # ssl_context_factory(config, default_factory) -> ssl.SSLContext, as uvicorn
    ssl_context_factory: Callable[..., Any] | None = setting(
        None, "object", None, since="0.1.0", uvicorn=True
    )
    reset_contextvars: bool = setting(
        False,
        "flag",
        "Run each ASGI request in a fresh contextvars.Context. Hides context set in the lifespan."
        " (Without it each request starts from a copy of its connection's context, never from"
        " another request's.)",
        since="0.1.0",
        uvicorn=True,
    )
    root_path: str = setting(
        "",
        "str",
        "Set the ASGI 'root_path' for applications submounted below a given URL path.",
        show_default=False,
        since="0.1.0",
        uvicorn=True,
    )
    timeout_keep_alive: float = setting(
        5,
        "float",
        "Close Keep-Alive connections if no new data is received within this timeout (in seconds).",
        minimum=0,
        gunicorn="keepalive",
        since="0.1.0",
        uvicorn=True,
    )
    # the heartbeat's period for callback_notify (uvicorn's; the gunicorn worker's --timeout)
    timeout_notify: float = setting(30, "float", None, minimum=0, since="0.1.0", uvicorn=True)
    callback_notify: Callable[..., Awaitable[None]] | None = setting(
        None, "object", None, since="0.1.0", uvicorn=True
    )
    # None: wait for in-flight requests as long as they take; 0 is a real value (no wait)
    timeout_graceful_shutdown: float | None = setting(
        None,
        "float",
        "Maximum number of seconds to wait for graceful shutdown.",
        minimum=0,
        off=True,
        gunicorn="graceful_timeout",
        since="0.1.0",
        uvicorn=True,
    )
    # the load balancer's time to take the server out of rotation; 0: stop at once
    drain_delay: float = setting(
        0.0,
        "float",
        "On SIGTERM (or the first SIGINT): /readyz answers 503 at once, and the server keeps serving"
        " for this many seconds (the load balancer's time to stop sending traffic) before it stops"
        " accepting and shuts down gracefully. A second signal skips the rest of it.",
        minimum=0,
        metavar="SECONDS",
        since="0.1.0",
    )
    limit_request_head_size: int = setting(
        65536,
        "int",
        "Maximum bytes in a request line plus its headers; larger requests get 431.",
        minimum=1,
        since="0.1.0",
    )
    # another name for limit_request_head_size (Config keeps the two in agreement)
    h11_max_incomplete_event_size: int | None = setting(
        None,
        "int",
        "uvicorn's name for --limit-request-head-size.",
        minimum=1,
        since="0.1.0",
        uvicorn=True,
    )
    limit_request_fields: int = setting(
        100,
        "int",
        "Maximum number of header lines in a request; more get 431.",
        minimum=1,
        gunicorn="limit_request_fields",
        since="0.1.0",
    )
    # gunicorn's setting: behind a proxy that strips X-Forwarded-For, an X_Forwarded_For would
    # get through, and WSGI-style mappings (Django's META) read both as HTTP_X_FORWARDED_FOR
    header_map: str = setting(
        "drop",
        "choice",
        "Request header fields whose name contains '_': drop them, refuse the request (400), or pass"
        " them to the app (dangerous: behind a proxy that strips X-Forwarded-For, an X_Forwarded_For"
        " gets through, and WSGI-style mappings read both as HTTP_X_FORWARDED_FOR).",
        choices=HEADER_MAPS,
        gunicorn="header_map",
        since="0.1.0",
    )
    # put first on sys.path before the app is imported; the command line's "" is the
    # current directory, Python's None leaves sys.path alone (uvicorn's defaults both)
    app_dir: str | None = setting(
        None,
        "str",
        "Look for APP in the specified directory, by adding this to the PYTHONPATH."
        " Defaults to the current working directory.",
        cli_default="",
        since="0.1.0",
        uvicorn=True,
    )
    factory: bool = setting(
        False,
        "flag",
        "Treat APP as an application factory, i.e. a () -> <ASGI app> callable.",
        since="0.1.0",
        uvicorn=True,
    )
    # "module:function" or, from Python, the function itself; the gunicorn worker reads
    # FASTASGI_WORKER_INIT from the environment (gunicorn's --env)
    worker_init: str | Callable[[], Any] | None = setting(
        None,
        "str",
        "Call this function (no arguments) in every process that serves, before APP is imported:"
        " each worker, the --reload server process (for OpenTelemetry, Sentry, metrics clients).",
        metavar="MODULE:FUNCTION",
        since="0.1.0",
    )


def _collect(table: type) -> tuple[Setting, ...]:
    """The entries of ``table`` in declaration order, named; the class attributes are
    removed, so that an instance attribute never set reads as missing, not as its entry."""
    entries = []
    for name, value in list(vars(table).items()):
        if isinstance(value, Setting):
            entries.append(replace(value, name=name))
            delattr(table, name)
    return tuple(entries)


SETTINGS: tuple[Setting, ...] = _collect(Settings)
BY_NAME: dict[str, Setting] = {entry.name: entry for entry in SETTINGS}
#: the command line's options, in --help's order
CLI_SETTINGS: tuple[Setting, ...] = tuple(entry for entry in SETTINGS if entry.on_command_line)
#: every default under the keyword's name, but those imported on demand (default_from)
DEFAULTS: dict[str, Any] = {entry.name: entry.default for entry in SETTINGS if entry.default_from is None}
