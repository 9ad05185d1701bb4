"""One settings object, validated once, and the loading of the application.

``Config`` takes every keyword uvicorn's ``Config`` takes, with uvicorn's defaults, plus
fastasgi's own limits. Everything is checked in ``__init__``: a bad value raises
``ConfigError`` with a one-line message that names the command-line flag and the value.
Settings that this version cannot honour yet are refused the same way instead of being
accepted and ignored (see ``NOT_SUPPORTED``).

``load()`` imports the application (``fastasgi._importer``), puts the proxy headers middleware
around it and builds the TLS context. The keywords, their defaults and their kinds, bounds
and choices are the settings table's (``fastasgi._settings``); what is checked here beyond
them is how settings fit together and what only code can tell (a file exists, an address
parses).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import ssl
import sys
import warnings
from collections.abc import Callable
from typing import Any, Literal

from fastasgi import _defaults, _settings, _sockets
from fastasgi._accesslog import compile_access_format
from fastasgi._http._core import check_header, is_token
from fastasgi._importer import LoadError, import_from_string, load_app
from fastasgi._settings import Settings
from fastasgi.logging import LOG_LEVELS, LOGGING_CONFIG, configure_logging
from fastasgi.middleware.proxy_headers import ProxyHeadersMiddleware, TrustedProxies

LifespanType = Literal["auto", "on", "off"]
LoopType = Literal["none", "auto", "asyncio", "uvloop"]
WSType = Literal["auto", "none", "websockets", "websockets-sansio"]
InterfaceType = Literal["auto", "asgi3", "asgi2"]

LIFESPAN_MODES = _settings.LIFESPAN_MODES
LOOP_TYPES = _settings.LOOP_TYPES
WS_TYPES = _settings.WS_TYPES
HTTP_TYPES = _settings.HTTP_TYPES
INTERFACES = _settings.INTERFACES
HEADER_MAPS = _settings.HEADER_MAPS
PROXY_PROTOCOLS = _settings.PROXY_PROTOCOLS

#: Exit code when the application cannot start, as uvicorn's: it cannot be found or
#: called, its lifespan startup failed, or its address cannot be bound.
STARTUP_FAILURE = 3

SSL_PROTOCOL_VERSION: int = _settings.BY_NAME["ssl_version"].default

logger = logging.getLogger("fastasgi.error")


class ConfigError(Exception):
    """A setting has a bad value, or the application cannot be loaded.

    The message is one line that names the flag (or the import string) and the bad value.
    ``show_cause`` is set when the cause's traceback helps (an exception raised by the
    user's own code while it was imported or built). ``exit_code``: 1, or what the error
    says (``load_error`` below).
    """

    exit_code = 1

    def __init__(self, message: str, *, show_cause: bool = False, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.show_cause = show_cause
        if exit_code is not None:
            self.exit_code = exit_code


def load_error(exc: LoadError) -> ConfigError:
    """A ``LoadError`` as the ``ConfigError`` to exit with: 3 (``STARTUP_FAILURE``) when the
    app (or the --loop factory) cannot be found or called, as uvicorn exits after its "Error
    loading ASGI app" lines; 1 when the user's code raised, as uvicorn exits when that
    exception escapes it."""
    code = 1 if exc.in_app_code else STARTUP_FAILURE
    return ConfigError(str(exc), show_cause=exc.show_cause, exit_code=code)


def flag_name(name: str) -> str:
    """The command-line flag for a Config attribute: ``limit_concurrency`` ->
    ``--limit-concurrency``, ``reload_dirs`` -> ``--reload-dir`` (the table's)."""
    entry = _settings.BY_NAME.get(name)
    return entry.flag if entry is not None else "--" + name.replace("_", "-")


def _invalid(name: str, value: Any, reason: str) -> ConfigError:
    # Worded as click words its own usage errors, so both kinds read alike.
    return ConfigError(f"Invalid value for '{flag_name(name)}': {value!r} {reason}.")


# uvicorn settings that this version cannot honour yet: (attribute, asked_for, message).
# Each is refused when asked for; an entry is removed when its feature lands.
NOT_SUPPORTED: list[tuple[str, Callable[[Any], bool], str]] = [
    (
        "http",
        lambda v: v not in ("auto", "h2"),
        "--http {value} is not supported: fastasgi always uses its own llhttp-based HTTP/1.1 protocol"
        " (--http auto; --http h2 serves HTTP/2 only)",
    ),
    (
        "interface",
        lambda v: v == "wsgi",
        "--interface wsgi is not supported: fastasgi serves ASGI 3 and ASGI 2 applications",
    ),
    (
        "ws",
        lambda v: v == "wsproto",
        "--ws wsproto is not supported: fastasgi's WebSockets are its own implementation (--ws auto)",
    ),
]


class Config(Settings):
    """Every setting of one server: ``Config(app, **settings)``, a keyword for each entry of
    the settings table (``fastasgi._settings.Settings``, which lists them with their
    defaults, bounds and help), by name: uvicorn's settings with uvicorn's defaults, plus
    fastasgi's own. ``app`` is the application or its ``"module:attr"`` import string.

    A setting that can be off is off with None (``"off"`` is taken too; see
    ``fastasgi._settings``). ``forwarded_allow_ips`` (None: ``$FORWARDED_ALLOW_IPS``, else
    ``127.0.0.1,::1``) and ``workers`` (None: ``$WEB_CONCURRENCY``, else 1) read the
    environment as uvicorn does, after ``env_file`` has been loaded.
    """

    def __init__(self, app: Any, **settings: Any) -> None:
        unknown = settings.keys() - _settings.BY_NAME.keys()
        if unknown:
            # what Python says of an explicit signature, so a typo reads the same as before
            raise TypeError(f"Config.__init__() got an unexpected keyword argument {min(unknown)!r}")
        self.app = app
        for entry in _settings.SETTINGS:
            value = settings[entry.name] if entry.name in settings else entry.get_default()
            setattr(self, entry.name, entry.normalise(value))
        #: where the admin listener listens (from admin_bind): ("tcp", (host, port)) or
        #: ("unix", path); None: no admin listener
        self.admin_endpoint: _sockets.Endpoint | None = None
        #: where to listen: ("tcp", (host, port)), ("unix", path) or ("fd", n); see endpoints
        self.endpoints: list[_sockets.Endpoint] = []
        #: trusted proxies, parsed from forwarded_allow_ips (set after the environment is read)
        self.trusted_proxies: Any = None
        #: the server's SSLContext when TLS is on (built by load())
        self.ssl: ssl.SSLContext | None = None

        self.loaded = False
        self.loaded_app: Any = None
        #: ``--header`` values as (lower-case name, value) bytes, ready for the wire
        self.encoded_headers: list[tuple[bytes, bytes]] = []

        # Logging first, so that every later error is reported through it.
        self._validate_logging()
        self.configure_logging()
        if self.log_format != _defaults.LOG_FORMAT and self.log_config not in (None, LOGGING_CONFIG):
            logger.warning(
                "--log-format %s has no effect with --log-config: the log config says how lines look.",
                self.log_format,
            )
        self._validate()
        self._load_env_file()
        self._apply_web_concurrency()
        self._validate_operations()
        if self.reuse_port and any(kind != "tcp" for kind, _ in self.endpoints):
            raise ConfigError(
                "--reuse-port needs TCP addresses: it cannot be used with unix sockets or --fd."
            )
        if self.reload and (self.limit_max_memory is not None or self.limit_worker_lifetime is not None):
            raise ConfigError(
                "--limit-max-memory and --limit-worker-lifetime recycle --workers processes:"
                " they cannot be used with --reload."
            )
        if self.limit_max_memory is not None and not os.path.exists("/proc/self/statm"):
            raise ConfigError("--limit-max-memory reads the workers' RSS from /proc: it needs Linux.")
        if (self.reload_dirs or self.reload_includes or self.reload_excludes) and not self.reload:
            logger.warning(
                "--reload-dir, --reload-include and --reload-exclude have no effect without --reload."
            )

    # -- validation ---------------------------------------------------------------------

    def _validate(self) -> None:
        # kinds, bounds and choices: the table's
        for entry in _settings.SETTINGS:
            _check_setting(entry, getattr(self, entry.name))
        if self.ws == "websockets-sansio":
            self.ws = "websockets"  # one implementation, fastasgi's own (sans-I/O already)

        if self.host is not None and not isinstance(self.host, str):
            raise _invalid("host", self.host, "is not a host name or address")
        if not isinstance(self.root_path, str):
            raise _invalid("root_path", self.root_path, "is not a string")

        h11_size = self.h11_max_incomplete_event_size
        if h11_size is not None:
            if self.limit_request_head_size not in (_defaults.LIMIT_REQUEST_HEAD_SIZE, h11_size):
                raise ConfigError(
                    "--h11-max-incomplete-event-size and --limit-request-head-size are two "
                    f"names for one limit; got {h11_size} and {self.limit_request_head_size}."
                )
            self.limit_request_head_size = h11_size

        self.encoded_headers = [_encode_header(header) for header in self.headers]
        if self.worker_init is not None and not callable(self.worker_init):
            module, _, function = str(self.worker_init).partition(":")
            if not isinstance(self.worker_init, str) or not module or not function:
                raise _invalid("worker_init", self.worker_init, 'is not of the form "module:function"')

        for name, asked_for, message in NOT_SUPPORTED:
            value = getattr(self, name)
            if asked_for(value):
                raise ConfigError(message.format(value=value))

    def _validate_logging(self) -> None:
        _check_setting(_settings.BY_NAME["log_format"], self.log_format)
        if self.log_level is not None and not isinstance(self.log_level, int):
            if not isinstance(self.log_level, str) or self.log_level.lower() not in LOG_LEVELS:
                choices = ", ".join(repr(level) for level in LOG_LEVELS)
                raise _invalid("log_level", self.log_level, f"is not one of {choices}")

    def configure_logging(self) -> None:
        """Apply the logging settings (done by ``__init__``; again in a process that
        received this object pickled). Raises ``ConfigError`` naming ``--log-config``."""
        try:
            configure_logging(
                self.log_config,
                log_level=self.log_level,
                use_colors=self.use_colors,
                access_log=self.access_log,
                access_log_format=self.access_log_format,
                log_format=self.log_format,
            )
        except ImportError as exc:
            raise ConfigError(
                f"--log-config {self.log_config!r} needs PyYAML: pip install pyyaml ({exc})"
            ) from None
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

    def _apply_web_concurrency(self) -> None:
        # uvicorn's (and gunicorn's) fallback for --workers; read after --env-file, as uvicorn.
        value = os.environ.get("WEB_CONCURRENCY")
        if self.workers is not None or not value:
            return
        try:
            workers = int(value)
        except ValueError:
            raise ConfigError(
                f"Invalid value for 'WEB_CONCURRENCY': {value!r} is not a valid integer."
            ) from None
        if workers < 1:
            raise ConfigError(f"Invalid value for 'WEB_CONCURRENCY': {value!r} is not in the range x>=1.")
        self.workers = workers

    def _validate_operations(self) -> None:
        """Proxies, TLS, access log format and listening addresses."""
        if self.access_log_format is not None:
            if not isinstance(self.access_log_format, str):
                raise _invalid("access_log_format", self.access_log_format, "is not a string")
            try:
                compile_access_format(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(f"Invalid value for '--access-log-format': {exc}.") from None

        if self.forwarded_allow_ips is None:
            self.forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", _defaults.FORWARDED_ALLOW_IPS)
        try:
            self.trusted_proxies = TrustedProxies(self.forwarded_allow_ips)
        except (ValueError, TypeError, AttributeError) as exc:
            raise _invalid(
                "forwarded_allow_ips", self.forwarded_allow_ips, str(exc) or "is not a list"
            ) from None

        self._validate_ssl()
        if self.proxy_protocol != "off" and self.is_ssl:
            # The header comes before the TLS handshake on the wire; asyncio's TLS layer
            # would read it as a ClientHello.
            raise ConfigError(
                f"--proxy-protocol {self.proxy_protocol} cannot be used with TLS (--ssl-certfile):"
                " terminate TLS at the proxy, or use --proxy-protocol off."
            )
        self.endpoints = self._endpoints()
        self.admin_endpoint = self._admin_endpoint()

    def _validate_ssl(self) -> None:
        _check_int("ssl_version", self.ssl_version, 0)
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise _invalid(name, os.fspath(path), "is not a file")
        if self.ssl_certfile is None and self.ssl_context_factory is None:
            # Without a certificate there is no TLS: refuse the TLS settings instead of
            # dropping them.
            tls_only = (
                "ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_ciphers", "ssl_cert_reqs", "ssl_version",
            )  # fmt: skip
            given = [
                flag_name(name) for name in tls_only if getattr(self, name) != _settings.BY_NAME[name].default
            ]
            if given:
                verb = "needs" if len(given) == 1 else "need"
                raise ConfigError(
                    f"{', '.join(given)} {verb} --ssl-certfile: TLS is on only with a certificate."
                )
        if (
            self.ssl_cert_reqs != ssl.CERT_NONE
            and self.ssl_ca_certs is None
            and self.ssl_context_factory is None
        ):
            logger.warning(
                "--ssl-cert-reqs %d without --ssl-ca-certs: no client certificate can be verified.",
                self.ssl_cert_reqs,
            )

    def _endpoints(self) -> list[_sockets.Endpoint]:
        if self.bind:
            if self.uds is not None or self.fd is not None:
                raise ConfigError(
                    "--bind cannot be combined with --uds or --fd; give them as --bind unix:PATH or --bind fd://N."
                )
            endpoints = []
            for value in self.bind:
                try:
                    endpoints.append(_sockets.parse_bind(value))
                except ValueError as exc:
                    raise _invalid("bind", value, str(exc)) from None
            return endpoints
        if self.fd is not None:
            return [("fd", self.fd)]
        if self.uds is not None:
            return [("unix", self.uds)]
        return [("tcp", (self.host, self.port))]

    def _admin_endpoint(self) -> _sockets.Endpoint | None:
        """``--admin-bind``: ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:PATH`` (a port is
        required: the default one is the app's), never an address the app is served on."""
        value = self.admin_bind
        if value is None:
            return None
        try:
            endpoint = _sockets.parse_bind(value)
        except ValueError as exc:
            raise _invalid("admin_bind", value, str(exc)) from None
        kind = endpoint[0]
        # A port is required: parse_bind's default port is the app's.
        if kind == "fd" or (kind == "tcp" and ":" not in value.strip().rpartition("]")[2]):
            raise _invalid("admin_bind", value, "is not HOST:PORT, [IPV6]:PORT or unix:PATH")
        if any(_same_address(endpoint, app) for app in self.endpoints):
            raise _invalid(
                "admin_bind", value, "is an address the app is served on; the admin listener needs its own"
            )
        return endpoint

    def create_ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from the ``ssl_*`` settings (None without TLS): the
        certificate chain, client verification, ciphers, and ALPN advertising http/1.1.
        ``ssl_context_factory(config, default_factory)`` may build or adjust it, as in
        uvicorn. Raises ``ConfigError`` naming the flag whose file or value is refused."""
        if self.ssl_context_factory is not None:
            context = self.ssl_context_factory(self, self._default_ssl_context)
            if not isinstance(context, ssl.SSLContext):
                raise ConfigError(
                    f"ssl_context_factory must return an ssl.SSLContext, got {type(context).__name__}."
                )
            return context
        if self.ssl_certfile is None:
            return None
        return self._default_ssl_context()

    def _default_ssl_context(self) -> ssl.SSLContext:
        if self.ssl_certfile is None:
            raise ConfigError("The default SSL context needs --ssl-certfile.")
        try:
            context = ssl.SSLContext(self.ssl_version)
        except (ValueError, OSError) as exc:
            raise _invalid("ssl_version", self.ssl_version, f"cannot be used ({exc})") from None
        password = self.ssl_keyfile_password
        try:
            context.load_cert_chain(
                self.ssl_certfile, self.ssl_keyfile, (lambda: password) if password else None
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            flags = "'--ssl-certfile' / '--ssl-keyfile'" + (" / '--ssl-keyfile-password'" if password else "")
            raise ConfigError(
                f"Invalid value for {flags}: cannot load the certificate and its key ({exc})."
            ) from None
        context.verify_mode = ssl.VerifyMode(self.ssl_cert_reqs)
        if self.ssl_ca_certs:
            try:
                context.load_verify_locations(self.ssl_ca_certs)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise _invalid(
                    "ssl_ca_certs", os.fspath(self.ssl_ca_certs), f"cannot be loaded ({exc})"
                ) from None
        if self.ssl_ciphers:
            try:
                context.set_ciphers(self.ssl_ciphers)
            except ssl.SSLError:
                raise _invalid(
                    "ssl_ciphers", self.ssl_ciphers, "is not a cipher list OpenSSL accepts"
                ) from None
        # RFC 7301 / RFC 9113 3.3: offer h2 first when HTTP/2 is on; a client offering only
        # http/1.1 gets it, and without HTTP/2 a client offering h2 falls back.
        # --http h2 offers h2 alone (RFC 7301 3.2: a client with no protocol in common gets the
        # no_application_protocol alert).
        if self.http == "h2":
            context.set_alpn_protocols(["h2"])
        else:
            context.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        return context

    def bind_socket(self) -> socket.socket:
        """uvicorn's ``Config.bind_socket``: the listening socket of the one address of the
        settings (``host``/``port``, ``uds`` or ``fd``), inheritable (a process started
        with it can serve on it: ``Server.run(sockets=[sock])``), and its "running on" line
        logged, as the server logs none for sockets handed in. A host name that resolves to
        several addresses gets the first. Raises ``ConfigError`` when the settings listen on
        more than one address (use ``bind_sockets``), ``BindError`` (an OSError naming the
        address) when it cannot be bound."""
        if len(self.endpoints) != 1:
            raise ConfigError(
                f"bind_socket() makes one socket; these settings listen on {len(self.endpoints)}"
                " addresses (--bind): use bind_sockets()."
            )
        first, *others = _sockets.bind(self.endpoints, self.backlog, self.reuse_port)
        _sockets.close_all(others)
        first.set_inheritable(True)
        _sockets.log_running([first], self.endpoints, tls=self.is_ssl)
        return first

    def bind_sockets(self) -> list[socket.socket]:
        """The listening sockets of every endpoint, as uvicorn's ``Config.bind_socket``
        (see ``fastasgi._sockets.bind``). Raises ``BindError``, an OSError whose
        ``where`` names the address."""
        return _sockets.bind(self.endpoints, self.backlog, self.reuse_port)

    # -- derived settings ---------------------------------------------------------------

    @property
    def asgi_version(self) -> Literal["2.0", "3.0"]:
        return "2.0" if self.interface == "asgi2" else "3.0"

    @property
    def use_subprocess(self) -> bool:
        """uvicorn's name: the app is served by processes other than this one (--reload, or
        more than one worker)."""
        return bool(self.reload or (self.workers or 1) > 1)

    @property
    def should_reload(self) -> bool:
        """uvicorn's name: --reload is on and can work (the app is an import string)."""
        return isinstance(self.app, str) and bool(self.reload)

    @property
    def supervised(self) -> bool:
        """Whether serving needs a supervisor process: ``--reload``, more than one worker,
        or recycling that must start a replacement before the old process stops accepting
        (``--limit-max-memory``, ``--limit-worker-lifetime``, or ``--limit-max-requests``
        with ``--workers`` given). ``--limit-max-requests`` alone keeps uvicorn's meaning: the
        single server process exits, and whoever started it starts it again."""
        if self.reload or (self.workers or 1) > 1:
            return True
        if self.limit_max_memory is not None or self.limit_worker_lifetime is not None:
            return True
        return self.workers is not None and self.limit_max_requests is not None

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
                raise ConfigError(
                    "--loop uvloop needs uvloop: pip install uvloop (or fastasgi[standard])"
                ) from None
            return uvloop.new_event_loop
        # "module:attr": a custom loop factory, as uvicorn allows.
        try:
            factory: Callable[[], asyncio.AbstractEventLoop] = import_from_string(
                self.loop, what="the --loop factory"
            )
        except LoadError as exc:
            raise load_error(exc) from exc.__cause__
        return factory

    def setup_event_loop(self) -> None:
        """Make ``--loop``'s event loop the one ``asyncio.run()`` and
        ``asyncio.new_event_loop()`` create from now on, as uvicorn's ``setup_event_loop``
        did before ``get_loop_factory`` replaced it (uvicorn 0.36): for code that calls it
        and then runs ``Server.serve()`` itself. ``Server.run()`` needs none of it."""
        factory = self.get_loop_factory()
        if factory is None:
            return  # --loop none: whatever the process has set up stays
        # Through the policy: the only switch asyncio.run() and new_event_loop() read. Made
        # here, not at import: policies are deprecated from Python 3.14 on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)

            class FactoryPolicy(asyncio.DefaultEventLoopPolicy):
                def new_event_loop(self) -> asyncio.AbstractEventLoop:
                    return factory()

            asyncio.set_event_loop_policy(FactoryPolicy())

    # -- the application ----------------------------------------------------------------

    def load(self) -> None:
        """Call ``worker_init`` (see ``run_worker_init``), import the application
        (``"module:attr"`` or an object), call it when it is a factory, decide ASGI 3 or
        ASGI 2 and wrap the latter (``fastasgi._importer``), put the proxy headers
        middleware around it and build the TLS context. Raises ``ConfigError``.

        Every process that serves calls this: the single server, each ``--workers``
        process (forked; the supervisor never loads), the ``--reload`` server process.
        The gunicorn worker class imports the app through gunicorn and calls
        ``run_worker_init`` itself, first."""
        if self.loaded:
            return
        if self.app_dir is not None:
            sys.path.insert(0, self.app_dir)

        # The app's modules are imported below: what the process needs first (tracing,
        # error reporting, a metrics client) is set up here, in the process that serves.
        run_worker_init(self.worker_init)
        try:
            app, self.interface = load_app(self.app, factory=self.factory, interface=self.interface)
        except LoadError as exc:
            raise load_error(exc) from exc.__cause__
        if self.proxy_headers:
            app = ProxyHeadersMiddleware(app, self.trusted_proxies)
        self.ssl = self.create_ssl_context()

        self.loaded_app = app
        self.loaded = True


def _init_signature() -> inspect.Signature:
    """``Config.__init__``'s signature as ``help()``, ``inspect`` and IDEs show it: ``app``,
    then each setting as a keyword with its default (the table's order)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    annotations = Settings.__annotations__
    return inspect.Signature(
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("app", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="Any"),
            *(
                inspect.Parameter(
                    entry.name, keyword, default=entry.get_default(), annotation=annotations[entry.name]
                )
                for entry in _settings.SETTINGS
            ),
        ],
        return_annotation="None",
    )


# Through __dict__: a function's attributes are not declared to type checkers.
Config.__init__.__dict__["__signature__"] = _init_signature()


def _same_address(one: _sockets.Endpoint, other: _sockets.Endpoint) -> bool:
    """Would ``one`` and ``other`` be the same listening address (port 0 never is)?"""
    if one[0] != other[0]:
        return False
    if one[0] == "unix":
        return bool(os.path.abspath(one[1]) == os.path.abspath(other[1]))
    if one[0] != "tcp":
        return False
    (host, port), (other_host, other_port) = one[1], other[1]
    if port == 0 or port != other_port:
        return False
    wildcard = (None, "", "0.0.0.0", "::")
    return host == other_host or host in wildcard or other_host in wildcard


class WorkerInitError(ConfigError):
    """``--worker-init`` could not be imported, or raised: the process cannot serve. Exit
    code 3 as a failed lifespan startup, with every supervisor alike (the ``--workers``
    supervisor and gunicorn's arbiter stop instead of restarting such a worker in a loop)."""

    exit_code = STARTUP_FAILURE


#: (process id, worker_init) pairs already called: once per process, however many times
#: a Config is loaded in it
_worker_init_done: set[tuple[int, Any]] = set()


def run_worker_init(worker_init: str | Callable[[], Any] | None) -> None:
    """Import ``worker_init`` (``"module:function"``, or the function itself) and call it
    with no arguments, once in this process. Raises ``WorkerInitError`` in one line naming
    ``--worker-init``; when the function raised, the cause (its traceback) is kept."""
    if worker_init is None:
        return
    key = (os.getpid(), worker_init)
    if key in _worker_init_done:
        return
    if isinstance(worker_init, str):
        shown = worker_init
    else:
        shown = getattr(worker_init, "__qualname__", repr(worker_init))
    try:
        function = import_from_string(worker_init, what="the --worker-init function")
    except LoadError as exc:
        raise WorkerInitError(str(exc), show_cause=exc.show_cause) from exc.__cause__
    if not callable(function):
        raise WorkerInitError(
            f"Invalid value for '--worker-init': {shown!r} is not callable (got {type(function).__name__})."
        )
    try:
        result = function()
    except Exception as exc:  # noqa: BLE001 - whatever the user's init raises, reported in one line
        raise WorkerInitError(
            f"--worker-init {shown!r} raised {type(exc).__name__}: {exc}", show_cause=True
        ) from exc.with_traceback(exc.__traceback__.tb_next if exc.__traceback__ else None)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: no "was never awaited" warning
        raise WorkerInitError(
            f"Invalid value for '--worker-init': {shown!r} returned an awaitable; it must be a"
            " plain function (it runs before the event loop serves)."
        )
    _worker_init_done.add(key)


def _check_setting(entry: _settings.Setting, value: Any) -> None:
    """The table's checks of one setting's value (after ``Setting.normalise``)."""
    if entry.kind == "choice":
        _check_choice(entry.name, value, entry.choices, entry.import_string)
    elif entry.kind == "int" and entry.minimum is not None:
        maximum = int(entry.maximum) if entry.maximum is not None else None
        _check_int(entry.name, value, int(entry.minimum), maximum, optional=entry.optional)
    elif entry.kind == "float" and entry.minimum is not None:
        _check_number(entry.name, value, optional=entry.optional, positive=entry.min_open)


def _check_choice(name: str, value: Any, choices: tuple[str, ...], allow_import_string: bool = False) -> None:
    if value in choices:
        return
    if allow_import_string and isinstance(value, str) and ":" in value:
        return
    listed = ", ".join(repr(choice) for choice in choices)
    raise _invalid(name, value, f"is not one of {listed}")


def _check_int(
    name: str, value: Any, minimum: int, maximum: int | None = None, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, value, "is not a valid integer")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"{minimum}<=x<={maximum}" if maximum is not None else f"x>={minimum}"
        raise _invalid(name, value, f"is not in the range {bounds}")


def _check_number(name: str, value: Any, optional: bool = False, positive: bool = False) -> None:
    # every float setting's lower bound is 0 (positive: 0 excluded)
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
    try:
        encoded = name.lower().encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{shown!r} is not latin-1 text") from None
    if not is_token(encoded[0]):
        raise ValueError(f"{shown!r} has an invalid header name")
    try:
        check_header(*encoded)  # the check every response header passes
    except RuntimeError:
        raise ValueError(f"{shown!r} has CR, LF or NUL in its value") from None
    return encoded


def _encode_header(header: Any) -> tuple[bytes, bytes]:
    try:
        return encode_header(header)
    except ValueError as exc:
        raise ConfigError(f"Invalid value for '--header': {exc}.") from None


def _asyncio_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    if sys.platform == "win32":
        return asyncio.ProactorEventLoop
    return asyncio.SelectorEventLoop
