"""One settings object, validated once, and the loading of the application.

``Config`` takes every keyword uvicorn's ``Config`` takes, with uvicorn's defaults, plus
fastasgi's own limits. Everything is checked in ``__init__``: a bad value raises
``ConfigError`` with a one-line message that names the command-line flag and the value.
Settings that this version cannot honour yet are refused the same way instead of being
accepted and ignored (see ``NOT_SUPPORTED``).

``load()`` imports the application, calls it when it is a factory, and wraps ASGI 2 apps.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import re
import ssl
import sys
import types
from collections.abc import Awaitable, Callable
from configparser import RawConfigParser
from typing import IO, Any, Literal

from fastasgi.logging import LOG_LEVELS, LOGGING_CONFIG, configure_logging

LifespanType = Literal["auto", "on", "off"]
LoopType = Literal["none", "auto", "asyncio", "uvloop"]
WSType = Literal["auto", "none", "websockets", "websockets-sansio"]
InterfaceType = Literal["auto", "asgi3", "asgi2"]

LIFESPAN_MODES = ("auto", "on", "off")
LOOP_TYPES = ("none", "auto", "asyncio", "uvloop")
WS_TYPES = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
HTTP_TYPES = ("auto", "h11", "httptools")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")

#: Exit code when the application cannot start (lifespan startup failed), as uvicorn.
STARTUP_FAILURE = 3

DEFAULT_LIMIT_REQUEST_HEAD_SIZE = 65536
SSL_PROTOCOL_VERSION: int = ssl.PROTOCOL_TLS_SERVER

# RFC 9110 5.6.2: a header name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: CR, LF and NUL are never allowed in a field value.
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")

logger = logging.getLogger("fastasgi.error")


class ConfigError(Exception):
    """A setting has a bad value, or the application cannot be loaded.

    The message is one line that names the flag (or the import string) and the bad value.
    ``show_cause`` is set when the cause's traceback helps (an exception raised by the
    user's own code while it was imported or built).
    """

    exit_code = 1

    def __init__(self, message: str, *, show_cause: bool = False) -> None:
        super().__init__(message)
        self.show_cause = show_cause


def flag_name(name: str) -> str:
    """The command-line flag for a Config attribute: ``limit_concurrency`` ->
    ``--limit-concurrency``."""
    return "--" + name.replace("_", "-")


def _invalid(name: str, value: Any, reason: str) -> ConfigError:
    # Worded as click words its own usage errors, so both kinds read alike.
    return ConfigError(f"Invalid value for '{flag_name(name)}': {value!r} {reason}.")


# uvicorn settings that this version cannot honour yet: (attribute, asked_for, message).
# Each is refused when asked for; an entry is removed when its feature lands.
NOT_SUPPORTED: list[tuple[str, Callable[[Any], bool], str]] = [
    (
        "workers",
        lambda v: v is not None and v != 1,
        "--workers is not supported yet: fastasgi runs one process per command",
    ),
    ("reload", bool, "--reload is not supported yet"),
    (
        "http",
        lambda v: v != "auto",
        "--http {value} is not supported: fastasgi always uses its own llhttp-based HTTP/1.1 protocol (--http auto)",
    ),
    ("http2", bool, "--http2 is not supported yet"),
    (
        "interface",
        lambda v: v == "wsgi",
        "--interface wsgi is not supported: fastasgi serves ASGI 3 and ASGI 2 applications",
    ),
    (
        "ws",
        lambda v: v == "wsproto",
        "--ws wsproto is not supported: fastasgi's WebSockets use the websockets library (--ws websockets)",
    ),
    ("proxy_headers", lambda v: v is True, "--proxy-headers is not supported yet"),
    ("forwarded_allow_ips", lambda v: v is not None, "--forwarded-allow-ips is not supported yet"),
    ("ssl_keyfile", lambda v: v is not None, "--ssl-keyfile is not supported yet (no TLS yet)"),
    ("ssl_certfile", lambda v: v is not None, "--ssl-certfile is not supported yet (no TLS yet)"),
    (
        "ssl_keyfile_password",
        lambda v: v is not None,
        "--ssl-keyfile-password is not supported yet (no TLS yet)",
    ),
    ("ssl_ca_certs", lambda v: v is not None, "--ssl-ca-certs is not supported yet (no TLS yet)"),
    ("ssl_ciphers", lambda v: v is not None, "--ssl-ciphers is not supported yet (no TLS yet)"),
    (
        "ssl_context_factory",
        lambda v: v is not None,
        "ssl_context_factory is not supported yet (no TLS yet)",
    ),
    (
        "reset_contextvars",
        bool,
        "--reset-contextvars is not supported yet",
    ),
]


class Config:
    """Every setting of one server. Arguments are uvicorn's (same names, same defaults,
    same meaning) plus:

    ``app_dir``: a directory put first on ``sys.path`` before the app is imported.
    ``limit_request_head_size``: most bytes in a request line plus headers (431 beyond it);
    uvicorn's ``h11_max_incomplete_event_size`` is accepted as another name for it.
    ``limit_request_fields``: most header lines in one request (431 beyond it).

    ``proxy_headers`` defaults to None (off) until proxy-header support lands; asking for it
    is refused rather than ignored.
    """

    def __init__(
        self,
        app: Any,
        host: str | None = "127.0.0.1",
        port: int = 8000,
        uds: str | os.PathLike[str] | None = None,
        fd: int | None = None,
        loop: LoopType | str = "auto",
        http: str = "auto",
        http2: bool = False,
        ws: WSType | str = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        lifespan: LifespanType = "auto",
        env_file: str | os.PathLike[str] | None = None,
        log_config: dict[str, Any] | str | os.PathLike[str] | RawConfigParser | IO[Any] | None = LOGGING_CONFIG,
        log_level: str | int | None = None,
        access_log: bool = True,
        use_colors: bool | None = None,
        interface: InterfaceType | str = "auto",
        reload: bool = False,
        reload_dirs: list[str] | str | None = None,
        reload_delay: float = 0.25,
        reload_includes: list[str] | str | None = None,
        reload_excludes: list[str] | str | None = None,
        workers: int | None = None,
        proxy_headers: bool | None = None,
        server_header: bool = True,
        date_header: bool = True,
        forwarded_allow_ips: list[str] | str | None = None,
        root_path: str = "",
        limit_concurrency: int | None = None,
        limit_max_requests: int | None = None,
        limit_max_requests_jitter: int = 0,
        backlog: int = 2048,
        timeout_keep_alive: float = 5,
        timeout_notify: float = 30,
        timeout_graceful_shutdown: float | None = None,
        timeout_worker_healthcheck: float = 5,
        callback_notify: Callable[..., Awaitable[None]] | None = None,
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = ssl.CERT_NONE,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_ciphers: str | None = None,
        ssl_context_factory: Callable[..., Any] | None = None,
        headers: list[tuple[str, str]] | list[str] | None = None,
        factory: bool = False,
        h11_max_incomplete_event_size: int | None = None,
        reset_contextvars: bool = False,
        app_dir: str | None = None,
        limit_request_head_size: int = DEFAULT_LIMIT_REQUEST_HEAD_SIZE,
        limit_request_fields: int = 100,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.uds = os.fspath(uds) if uds is not None else None
        self.fd = fd
        self.loop = loop
        self.http = http
        self.http2 = http2
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.lifespan = lifespan
        self.env_file = env_file
        self.log_config = log_config
        self.log_level = log_level
        self.access_log = access_log
        self.use_colors = use_colors
        self.interface = interface
        self.reload = reload
        self.reload_dirs = reload_dirs
        self.reload_delay = reload_delay
        self.reload_includes = reload_includes
        self.reload_excludes = reload_excludes
        self.workers = workers
        self.proxy_headers = proxy_headers
        self.server_header = server_header
        self.date_header = date_header
        self.forwarded_allow_ips = forwarded_allow_ips
        self.root_path = root_path
        self.limit_concurrency = limit_concurrency
        self.limit_max_requests = limit_max_requests
        self.limit_max_requests_jitter = limit_max_requests_jitter
        self.backlog = backlog
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_notify = timeout_notify
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.callback_notify = callback_notify
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.ssl_context_factory = ssl_context_factory
        self.headers = list(headers or [])
        self.factory = factory
        self.h11_max_incomplete_event_size = h11_max_incomplete_event_size
        self.reset_contextvars = reset_contextvars
        self.app_dir = app_dir
        self.limit_request_head_size = limit_request_head_size
        self.limit_request_fields = limit_request_fields

        self.loaded = False
        self.loaded_app: Any = None
        #: ``--header`` values as (lower-case name, value) bytes, ready for the wire
        self.encoded_headers: list[tuple[bytes, bytes]] = []

        # Logging first, so that every later error is reported through it.
        self._validate_logging()
        self._configure_logging()
        self._validate()
        self._load_env_file()
        if (reload_dirs or reload_includes or reload_excludes) and not reload:
            logger.warning("--reload-dir, --reload-include and --reload-exclude have no effect without --reload.")

    # -- validation ---------------------------------------------------------------------

    def _validate(self) -> None:
        _check_choice("loop", self.loop, LOOP_TYPES, allow_import_string=True)
        _check_choice("http", self.http, HTTP_TYPES)
        _check_choice("ws", self.ws, WS_TYPES)
        _check_choice("lifespan", self.lifespan, LIFESPAN_MODES)
        _check_choice("interface", self.interface, INTERFACES)
        if self.ws == "websockets-sansio":
            self.ws = "websockets"  # fastasgi's websockets support is sans-I/O already

        if self.host is not None and not isinstance(self.host, str):
            raise _invalid("host", self.host, "is not a host name or address")
        _check_int("port", self.port, 0, 65535)
        _check_int("fd", self.fd, 0, optional=True)
        _check_int("backlog", self.backlog, 1)
        _check_int("workers", self.workers, 1, optional=True)
        _check_int("limit_concurrency", self.limit_concurrency, 1, optional=True)
        _check_int("limit_max_requests", self.limit_max_requests, 1, optional=True)
        _check_int("limit_max_requests_jitter", self.limit_max_requests_jitter, 0)
        _check_int("limit_request_head_size", self.limit_request_head_size, 1)
        _check_int("limit_request_fields", self.limit_request_fields, 1)
        _check_int("h11_max_incomplete_event_size", self.h11_max_incomplete_event_size, 1, optional=True)
        _check_int("ws_max_size", self.ws_max_size, 1)
        _check_int("ws_max_queue", self.ws_max_queue, 1)
        _check_number("ws_ping_interval", self.ws_ping_interval, optional=True, positive=True)
        _check_number("ws_ping_timeout", self.ws_ping_timeout, optional=True, positive=True)
        _check_number("timeout_keep_alive", self.timeout_keep_alive)
        _check_number("timeout_notify", self.timeout_notify)
        _check_number("timeout_graceful_shutdown", self.timeout_graceful_shutdown, optional=True)
        _check_number("timeout_worker_healthcheck", self.timeout_worker_healthcheck)
        _check_number("reload_delay", self.reload_delay)
        if not isinstance(self.root_path, str):
            raise _invalid("root_path", self.root_path, "is not a string")

        h11_size = self.h11_max_incomplete_event_size
        if h11_size is not None:
            if self.limit_request_head_size not in (DEFAULT_LIMIT_REQUEST_HEAD_SIZE, h11_size):
                raise ConfigError(
                    "--h11-max-incomplete-event-size and --limit-request-head-size are two "
                    f"names for one limit; got {h11_size} and {self.limit_request_head_size}."
                )
            self.limit_request_head_size = h11_size

        self.encoded_headers = [_encode_header(header) for header in self.headers]

        for name, asked_for, message in NOT_SUPPORTED:
            value = getattr(self, name)
            if asked_for(value):
                raise ConfigError(message.format(value=value))

    def _validate_logging(self) -> None:
        if self.log_level is not None and not isinstance(self.log_level, int):
            if not isinstance(self.log_level, str) or self.log_level.lower() not in LOG_LEVELS:
                choices = ", ".join(repr(level) for level in LOG_LEVELS)
                raise _invalid("log_level", self.log_level, f"is not one of {choices}")

    def _configure_logging(self) -> None:
        try:
            configure_logging(self)
        except ImportError as exc:
            raise ConfigError(f"--log-config {self.log_config!r} needs PyYAML: pip install pyyaml ({exc})") from None
        except (OSError, ValueError, TypeError, AttributeError, KeyError, RuntimeError) as exc:
            # dictConfig reports a bad config as ValueError, fileConfig as KeyError or
            # RuntimeError; both can be long, so keep the first line.
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            shown = self.log_config if isinstance(self.log_config, (str, os.PathLike)) else "<dict>"
            raise ConfigError(
                f"Invalid value for '--log-config': {os.fspath(shown)!r} cannot be used: {reason}"
            ) from None

    def _load_env_file(self) -> None:
        if self.env_file is None:
            return
        if not os.path.isfile(self.env_file):
            raise _invalid("env_file", os.fspath(self.env_file), "is not a file")
        try:
            from dotenv import load_dotenv
        except ImportError:
            raise ConfigError(
                "--env-file needs python-dotenv: pip install python-dotenv (or fastasgi[standard])"
            ) from None
        logger.info("Loading environment from '%s'", os.fspath(self.env_file))
        load_dotenv(dotenv_path=self.env_file)

    # -- derived settings ---------------------------------------------------------------

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        return "2.0" if self.interface == "asgi2" else "3.0"

    @property
    def is_ssl(self) -> bool:
        return bool(self.ssl_keyfile or self.ssl_certfile or self.ssl_context_factory)

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        """The event loop constructor for ``--loop``; None means asyncio's default."""
        if self.loop == "none":
            return None
        if self.loop == "auto":
            try:
                import uvloop
            except ImportError:
                return _asyncio_loop_factory()
            return uvloop.new_event_loop
        if self.loop == "asyncio":
            return _asyncio_loop_factory()
        if self.loop == "uvloop":
            try:
                import uvloop
            except ImportError:
                raise ConfigError("--loop uvloop needs uvloop: pip install uvloop (or fastasgi[standard])") from None
            return uvloop.new_event_loop
        # "module:attr": a custom loop factory, as uvicorn allows.
        return import_from_string(self.loop, what="the --loop factory")

    # -- the application ----------------------------------------------------------------

    def load(self) -> None:
        """Import the application (``"module:attr"`` or an object), call it when it is a
        factory, decide ASGI 3 or ASGI 2 and wrap the latter. Raises ``ConfigError``."""
        if self.loaded:
            return
        if self.app_dir is not None:
            sys.path.insert(0, self.app_dir)

        app = import_from_string(self.app)

        if self.factory:
            app = _call_factory(app)
        elif _looks_like_factory(app):
            logger.warning(
                "ASGI app factory detected. Using it, but please consider setting the --factory flag explicitly."
            )
            app = _call_factory(app)

        if not callable(app):
            raise ConfigError(
                f"Error loading ASGI app. {_describe(self.app)} is not callable (got {type(app).__name__})."
            )

        if self.interface == "auto":
            self.interface = "asgi3" if _is_asgi3(app) else "asgi2"
        if self.interface == "asgi2":
            app = ASGI2Adapter(app)

        self.loaded_app = app
        self.loaded = True


def _check_choice(name: str, value: Any, choices: tuple[str, ...], allow_import_string: bool = False) -> None:
    if value in choices:
        return
    if allow_import_string and isinstance(value, str) and ":" in value:
        return
    listed = ", ".join(repr(choice) for choice in choices)
    raise _invalid(name, value, f"is not one of {listed}")


def _check_int(name: str, value: Any, minimum: int, maximum: int | None = None, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, value, "is not a valid integer")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"{minimum}<=x<={maximum}" if maximum is not None else f"x>={minimum}"
        raise _invalid(name, value, f"is not in the range {bounds}")


def _check_number(name: str, value: Any, optional: bool = False, positive: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise _invalid(name, value, "is not a valid number")
    if value < 0 or (positive and value == 0):
        raise _invalid(name, value, "is not in the range x>0" if positive else "is not in the range x>=0")


def encode_header(header: Any) -> tuple[bytes, bytes]:
    """A ``--header`` given as ``"Name:Value"`` or ``(name, value)`` -> wire bytes
    (lower-case name). Raises ``ValueError`` saying what is wrong with it."""
    if isinstance(header, str):
        name, sep, value = header.partition(":")
        if not sep:
            raise ValueError(f"{header!r} is not of the form NAME:VALUE")
    elif isinstance(header, (tuple, list)) and len(header) == 2:
        name, value = header
    else:
        raise ValueError(f"{header!r} is not of the form NAME:VALUE")
    name, value = str(name).strip(), str(value).strip()
    shown = f"{name}:{value}"
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{shown!r} has an invalid header name")
    if _BAD_VALUE_CHARS.search(value):
        raise ValueError(f"{shown!r} has CR, LF or NUL in its value")
    try:
        return name.lower().encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{shown!r} is not latin-1 text") from None


def _encode_header(header: Any) -> tuple[bytes, bytes]:
    try:
        return encode_header(header)
    except ValueError as exc:
        raise ConfigError(f"Invalid value for '--header': {exc}.") from None


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _asyncio_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop
    return asyncio.SelectorEventLoop


# -- importing the application ----------------------------------------------------------


def import_from_string(import_str: Any, what: str = "ASGI app") -> Any:
    """Resolve ``"module:attr"`` (``attr`` may be dotted) to the object it names. Anything
    that is not a string is returned as it is. Raises ``ConfigError`` with a one-line
    message (uvicorn's wording) when the string is malformed, the module is missing or the
    attribute is; an import error raised inside the module is reported in one line with
    where it happened."""
    if not isinstance(import_str, str):
        return import_str

    module_str, _, attrs_str = import_str.partition(":")
    if not module_str or not attrs_str:
        raise ConfigError(
            f'Error loading {what}. Import string "{import_str}" must be in format "<module>:<attribute>".'
        )

    try:
        module = importlib.import_module(module_str)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and _is_module_or_parent(exc.name, module_str):
            raise ConfigError(f'Error loading {what}. Could not import module "{module_str}".') from None
        where = _where(exc)
        raise ConfigError(f'Error loading {what}. Could not import module "{module_str}": {exc}{where}.') from None
    except Exception as exc:
        raise ConfigError(
            f'Error loading {what}. Importing module "{module_str}" raised {type(exc).__name__}: {exc}',
            show_cause=True,
        ) from _trimmed(exc)

    instance: Any = module
    try:
        for attr_str in attrs_str.split("."):
            instance = getattr(instance, attr_str)
    except AttributeError:
        raise ConfigError(
            f'Error loading {what}. Attribute "{attrs_str}" not found in module "{module_str}".'
        ) from None
    return instance


def _is_module_or_parent(missing: str | None, module_str: str) -> bool:
    """True when the module that was not found is the one asked for or a package on its
    way (``pkg`` for ``pkg.sub``), not something the module itself imports."""
    if missing is None:
        return False
    return module_str == missing or module_str.startswith(missing + ".")


def _user_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """Skip the traceback entries of importlib and of this module: what is left starts in
    the user's code."""
    here = __file__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == here or filename.startswith("<frozen ") or "importlib" in filename:
            tb = tb.tb_next
        else:
            break
    return tb


def _where(exc: BaseException) -> str:
    """`` (file.py, line 3)`` for the first line of user code in ``exc``'s traceback."""
    tb = _user_frames(exc.__traceback__)
    if tb is None:
        return ""
    filename = os.path.relpath(tb.tb_frame.f_code.co_filename)
    if filename.startswith(".."):
        filename = tb.tb_frame.f_code.co_filename
    return f" ({filename}, line {tb.tb_lineno})"


def _trimmed(exc: BaseException) -> BaseException:
    return exc.with_traceback(_user_frames(exc.__traceback__))


def _call_factory(factory: Any) -> Any:
    try:
        inspect.signature(factory).bind()
    except TypeError as exc:
        raise ConfigError(f"Error loading ASGI app factory: {exc}") from None
    except ValueError:
        pass  # no signature to check (some builtins); just call it
    try:
        return factory()
    except Exception as exc:
        raise ConfigError(
            f"Error loading ASGI app factory: {type(exc).__name__}: {exc}", show_cause=True
        ) from _trimmed(exc)


def _looks_like_factory(app: Any) -> bool:
    """A plain function that takes no arguments cannot be an ASGI app: uvicorn calls it
    as a factory (with a warning) and so do we. Checked on the signature, not by a trial
    call, so nothing of the user's runs by accident."""
    if not inspect.isfunction(app) or _iscoroutinefunction(app):
        return False
    try:
        inspect.signature(app).bind()
    except TypeError:
        return False
    return True


if sys.version_info >= (3, 12):
    _iscoroutinefunction = inspect.iscoroutinefunction
else:
    # asyncio's also sees functions marked by asgiref's markcoroutinefunction (Django).
    _iscoroutinefunction = asyncio.iscoroutinefunction


def _is_asgi3(app: Any) -> bool:
    """uvicorn's rule: an ASGI 3 app is a coroutine function, or an object whose
    ``__call__`` is one; an ASGI 2 app is a class or callable returning an instance."""
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app):
        return _iscoroutinefunction(app)
    return _iscoroutinefunction(getattr(app, "__call__", None))  # noqa: B004 (the method itself)


class ASGI2Adapter:
    """Serves an ASGI 2 application (``app(scope)`` returns ``instance(receive, send)``)
    through the ASGI 3 interface."""

    def __init__(self, app: Callable[[dict], Callable[..., Awaitable[None]]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        instance = self.app(scope)
        await instance(receive, send)
