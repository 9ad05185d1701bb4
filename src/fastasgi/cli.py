"""The command line: ``fastasgi APP`` and ``python -m fastasgi APP``.

Flag names and defaults are uvicorn's, so ``uvicorn main:app --port 9000`` becomes
``fastasgi main:app --port 9000``. click checks each value's type and range (a bad one is a
usage error naming the flag); ``Config`` checks how they fit together.
"""

from __future__ import annotations

import platform
import ssl
import sys
from collections.abc import Sequence
from typing import Any

import click

from fastasgi import _defaults
from fastasgi._accesslog import compile_access_format
from fastasgi._sockets import parse_bind
from fastasgi._version import __version__
from fastasgi.config import HEADER_MAPS, LIFESPAN_MODES, SSL_PROTOCOL_VERSION, encode_header
from fastasgi.logging import LOG_FORMATS, LOG_LEVELS, LOGGING_CONFIG
from fastasgi.main import run

#: Every option can also come from the environment: --limit-concurrency from
#: FASTASGI_LIMIT_CONCURRENCY, APP from FASTASGI_APP (uvicorn: UVICORN_...).
ENV_PREFIX = "FASTASGI"


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(
        f"fastasgi {__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def _check_headers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    for header in value:
        try:
            encode_header(header)
        except ValueError as exc:
            raise click.BadParameter(f"{exc}.", ctx=ctx, param=param) from None
    return list(value)


def _check_binds(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str]:
    for bind in value:
        try:
            parse_bind(bind)
        except ValueError as exc:
            raise click.BadParameter(f"{bind!r} {exc}.", ctx=ctx, param=param) from None
    return list(value)


def _check_access_log_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            compile_access_format(value)
        except ValueError as exc:
            raise click.BadParameter(f"{exc}.", ctx=ctx, param=param) from None
    return value


def _load_env_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--env-file is read before the other options (it is eager), so that FASTASGI_*
    variables in it set options too. Variables already in the environment win."""
    if value is not None and not ctx.resilient_parsing:
        try:
            from dotenv import load_dotenv
        except ImportError:
            return value  # Config reports it
        load_dotenv(dotenv_path=value)
    return value


class _ChoiceOrImportString(click.Choice):
    """One of ``choices``, or a ``"module:attribute"`` import string (as uvicorn's --loop)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and ":" in value.strip(":") and value not in self.choices:
            return value
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            choices = ", ".join(repr(choice) for choice in self.choices)
            self.fail(
                f'{value!r} is not one of {choices}, or a "module:attribute" import string.', param, ctx
            )


class _Command(click.Command):
    """click's command, with usage errors (a bad or unknown flag) reported in one line,
    ``Error: Invalid value for '--port': 'x' is not a valid integer.``, exit 2; a missing APP
    gets click's usage line and --help hint first, as uvicorn's does."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, click.MissingParameter) and exc.param is not None and exc.param.name == "app":
                exc.show()  # `fastasgi` alone: the usage line and the --help hint, as uvicorn's
                sys.exit(exc.exit_code)
            message = " ".join(exc.format_message().split("\n"))
            click.echo(f"Error: {message}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX},
)
@click.argument("app", envvar=f"{ENV_PREFIX}_APP")
@click.option("--host", type=str, default=_defaults.HOST, show_default=True, help="Bind socket to this host.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_defaults.PORT,
    show_default=True,
    help="Bind socket to this port. If 0, an available port will be picked.",
)
@click.option(
    "--bind",
    "-b",
    "bind",
    multiple=True,
    callback=_check_binds,
    help="Listen on this address (repeatable; replaces --host/--port): HOST:PORT, [IPV6]:PORT,"
    " unix:PATH or fd://N.",
)
@click.option(
    "--admin-bind",
    type=str,
    default=_defaults.ADMIN_BIND,
    help="Serve the admin listener (GET /metrics: Prometheus) on this address, never the app's:"
    " HOST:PORT, [IPV6]:PORT or unix:PATH. With --workers the supervisor serves it, with the"
    " counts of every worker.  [default: off]",
)
@click.option("--uds", type=str, default=None, help="Bind to a UNIX domain socket.")
@click.option(
    "--fd", type=click.IntRange(min=0), default=None, help="Bind to socket from this file descriptor."
)
@click.option("--reload", is_flag=True, default=False, help="Enable auto-reload (needs watchfiles).")
@click.option(
    "--reload-dir",
    "reload_dirs",
    multiple=True,
    type=click.Path(exists=True),
    help="Set reload directories explicitly, instead of using the current working directory.",
)
@click.option(
    "--reload-include",
    "reload_includes",
    multiple=True,
    help="Set glob patterns to include while watching for files. Includes '*.py' by default;"
    " these defaults can be overridden with `--reload-exclude`.",
)
@click.option(
    "--reload-exclude",
    "reload_excludes",
    multiple=True,
    help="Set glob patterns to exclude while watching for files. Includes '.*, .py[cod], .sw.*, ~*'"
    " by default; these defaults can be overridden with `--reload-include`.",
)
@click.option(
    "--reload-delay",
    type=click.FloatRange(min=0),
    default=_defaults.RELOAD_DELAY,
    show_default=True,
    help="Delay between previous and next check if application needs to be reloaded.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Number of worker processes. Defaults to the $WEB_CONCURRENCY environment variable if available,"
    " or 1. Not valid with --reload.",
)
@click.option(
    "--reuse-port",
    is_flag=True,
    default=False,
    help="Give each worker a listener of its own (SO_REUSEPORT): the kernel spreads connections over them.",
)
@click.option(
    "--limit-max-requests",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum number of requests to service before terminating the process (a worker is replaced).",
)
@click.option(
    "--limit-max-requests-jitter",
    type=click.IntRange(min=0),
    default=_defaults.LIMIT_MAX_REQUESTS_JITTER,
    show_default=True,
    help="Maximum jitter to add to limit_max_requests. Staggers worker restarts to avoid all workers"
    " restarting simultaneously.",
)
@click.option(
    "--http2/--no-http2",
    default=_defaults.HTTP2,
    show_default=True,
    help="Serve HTTP/2: h2c on a cleartext listener (a connection that starts with the HTTP/2"
    " preface), h2 over TLS (ALPN). HTTP/1.1 clients are served as before either way.",
)
@click.option(
    "--http2-max-concurrent-streams",
    type=click.IntRange(min=1, max=2**31 - 1),
    default=_defaults.HTTP2_MAX_CONCURRENT_STREAMS,
    show_default=True,
    help="Streams one HTTP/2 client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).",
)
@click.option(
    "--http2-initial-stream-window-size",
    type=click.IntRange(min=1, max=2**31 - 1),
    default=_defaults.HTTP2_INITIAL_STREAM_WINDOW_SIZE,
    show_default=True,
    help="Request body bytes an HTTP/2 stream may send ahead of the app reading them.",
)
@click.option(
    "--http2-initial-connection-window-size",
    type=click.IntRange(min=65535, max=2**31 - 1),
    default=_defaults.HTTP2_INITIAL_CONNECTION_WINDOW_SIZE,
    show_default=True,
    help="Request body bytes all streams of one HTTP/2 connection may send ahead of their apps.",
)
@click.option(
    "--http2-max-frame-size",
    type=click.IntRange(min=16384, max=2**24 - 1),
    default=_defaults.HTTP2_MAX_FRAME_SIZE,
    show_default=True,
    help="The largest HTTP/2 frame payload accepted (SETTINGS_MAX_FRAME_SIZE).",
)
@click.option(
    "--http2-max-headers-size",
    type=click.IntRange(min=1, max=2**31 - 1),
    default=None,
    help="The largest HTTP/2 request header list (SETTINGS_MAX_HEADER_LIST_SIZE); more gets 431."
    "  [default: --limit-request-head-size]",
)
@click.option(
    "--limit-max-memory",
    type=click.IntRange(min=1),
    default=_defaults.LIMIT_MAX_MEMORY,
    metavar="MIB",
    help="Recycle a worker whose resident memory (RSS) exceeds this many MiB: its replacement starts"
    " and is ready before it stops accepting. Runs the supervisor even with one worker. Linux.",
)
@click.option(
    "--limit-max-memory-jitter",
    type=click.IntRange(min=0),
    default=_defaults.LIMIT_MAX_MEMORY_JITTER,
    show_default=True,
    metavar="MIB",
    help="Maximum jitter to add to limit_max_memory, per worker.",
)
@click.option(
    "--limit-worker-lifetime",
    type=click.FloatRange(min=0, min_open=True),
    default=_defaults.LIMIT_WORKER_LIFETIME,
    metavar="SECONDS",
    help="Recycle a worker after it has served this long: its replacement starts and is ready before"
    " it stops accepting. Runs the supervisor even with one worker.",
)
@click.option(
    "--limit-worker-lifetime-jitter",
    type=click.FloatRange(min=0),
    default=_defaults.LIMIT_WORKER_LIFETIME_JITTER,
    show_default=True,
    metavar="SECONDS",
    help="Maximum jitter to add to limit_worker_lifetime, per worker.",
)
@click.option(
    "--timeout-worker-healthcheck",
    type=click.FloatRange(min=0, min_open=True),
    default=_defaults.TIMEOUT_WORKER_HEALTHCHECK,
    show_default=True,
    help="Maximum number of seconds to wait for a worker to respond to a healthcheck"
    " (its event loop's heartbeat, once it serves).",
)
@click.option(
    "--loop",
    type=_ChoiceOrImportString(["auto", "asyncio", "uvloop"]),
    default=_defaults.LOOP,
    show_default=True,
    help='Event loop implementation (auto: uvloop when installed), or a "module:attribute" loop factory.',
)
@click.option(
    "--http",
    type=str,
    metavar="[auto|h11|httptools]",
    default=_defaults.HTTP,
    show_default=True,
    help="HTTP protocol implementation. fastasgi has one, its own (llhttp): anything but auto is refused.",
)
@click.option(
    "--ws",
    type=click.Choice(["auto", "websockets", "websockets-sansio", "none"]),
    default=_defaults.WS,
    show_default=True,
    help="WebSocket protocol implementation. fastasgi has one, its own: auto, websockets and "
    "websockets-sansio select it; none serves upgrade requests as plain HTTP.",
)
@click.option(
    "--ws-max-size",
    type=click.IntRange(min=1),
    default=_defaults.WS_MAX_SIZE,
    show_default=True,
    help="WebSocket max size message in bytes.",
)
@click.option(
    "--ws-max-queue",
    type=click.IntRange(min=1),
    default=_defaults.WS_MAX_QUEUE,
    show_default=True,
    help="The maximum length of the WebSocket message queue.",
)
@click.option(
    "--ws-ping-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=_defaults.WS_PING_INTERVAL,
    show_default=True,
    help="WebSocket ping interval in seconds.",
)
@click.option(
    "--ws-ping-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_defaults.WS_PING_TIMEOUT,
    show_default=True,
    help="WebSocket ping timeout in seconds.",
)
@click.option(
    "--ws-per-message-deflate",
    type=bool,
    default=_defaults.WS_PER_MESSAGE_DEFLATE,
    show_default=True,
    help="WebSocket per-message-deflate compression.",
)
@click.option(
    "--ws-per-message-deflate-level",
    type=click.IntRange(min=0, max=9),
    default=_defaults.WS_PER_MESSAGE_DEFLATE_LEVEL,
    show_default=True,
    help="zlib compression level of per-message-deflate: 1 is the fastest, 9 the smallest output, "
    "6 (the default) what uvicorn compresses with.",
)
@click.option(
    "--interface",
    type=click.Choice(["auto", "asgi3", "asgi2", "wsgi"]),
    default=_defaults.INTERFACE,
    show_default=True,
    help="Select ASGI3 or ASGI2 as the application interface (wsgi is refused).",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    is_eager=True,
    callback=_load_env_file,
    help="Environment configuration file (FASTASGI_* variables in it set options too).",
)
@click.option(
    "--log-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Logging configuration file. Supported formats: .ini, .json, .yaml.",
)
@click.option(
    "--lifespan",
    type=click.Choice(LIFESPAN_MODES),
    default=_defaults.LIFESPAN,
    show_default=True,
    help="Lifespan implementation.",
)
@click.option(
    "--log-level",
    type=click.Choice(list(LOG_LEVELS)),
    default=None,
    help="Log level. [default: info]",
)
@click.option("--access-log/--no-access-log", default=True, help="Enable/Disable access log.")
@click.option(
    "--access-log-format",
    default=None,
    callback=_check_access_log_format,
    help="Access log line, with atoms such as %(h)s %(r)s %(s)s %(b)s %(M)s %({header}i)s"
    " (see the README). [default: uvicorn's line]",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=_defaults.LOG_FORMAT,
    show_default=True,
    help="Log lines as text, or one JSON object per line (json: time, level, logger, message; access"
    " lines add client, method, path, status, bytes, request_time...; with --access-log-format"
    " the access line is the message). Has no effect with --log-config.",
)
@click.option("--use-colors/--no-use-colors", default=None, help="Enable/Disable colorized logging.")
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    help="Enable/Disable X-Forwarded-For/-Proto/-Host/-Port and Forwarded (RFC 7239) from trusted"
    " proxies to populate client, scheme and server.  [default: enabled]",
)
@click.option(
    "--server-header/--no-server-header", default=True, help="Enable/Disable default Server header."
)
@click.option("--date-header/--no-date-header", default=True, help="Enable/Disable default Date header.")
@click.option(
    "--forwarded-allow-ips",
    type=str,
    default=None,
    help="Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket path) to"
    " trust with proxy headers. Defaults to the $FORWARDED_ALLOW_IPS environment variable if"
    f" available, or {_defaults.FORWARDED_ALLOW_IPS!r}. The literal '*' means trust everything.",
)
@click.option(
    "--proxy-protocol",
    type=click.Choice(_defaults.PROXY_PROTOCOLS),
    default=_defaults.PROXY_PROTOCOL,
    show_default=True,
    help="Read a PROXY protocol header (haproxy's v1 text or v2 binary) at the start of every"
    " connection, only from --forwarded-allow-ips peers: it sets the client and server addresses."
    " auto accepts v1, v2 or no header. A bad or untrusted header closes the connection.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    callback=_check_headers,
    # named after the flag, and after the parameter as click (and uvicorn) would
    envvar=[f"{ENV_PREFIX}_HEADER", f"{ENV_PREFIX}_HEADERS"],
    help="Specify custom default HTTP response headers as a Name:Value pair (repeatable).",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum number of concurrent connections or tasks to allow, before issuing HTTP 503 responses.",
)
@click.option(
    "--backlog",
    type=click.IntRange(min=1),
    default=_defaults.BACKLOG,
    show_default=True,
    help="Maximum number of connections to hold in backlog.",
)
@click.option(
    "--limit-request-body",
    type=click.IntRange(min=0),
    default=None,
    help="Maximum bytes in a request body; larger requests get 413.  [default: no limit]",
)
@click.option(
    "--timeout-request-head",
    type=click.FloatRange(min=0),
    default=_defaults.TIMEOUT_REQUEST_HEAD,
    show_default=True,
    help="Seconds to receive a whole request head once it has begun (slowloris defence); then 408"
    " and close. 0 turns it off.",
)
@click.option(
    "--timeout-request-body",
    type=click.FloatRange(min=0),
    default=_defaults.TIMEOUT_REQUEST_BODY,
    show_default=True,
    help="Seconds without a request body byte while the app waits for the body; then 408 and close."
    " 0 turns it off.",
)
@click.option(
    "--timeout-request",
    type=click.FloatRange(min=0),
    default=_defaults.TIMEOUT_REQUEST,
    help="Seconds a request may take, from its head to the end of its response; then the app"
    " is cancelled and the client gets 504 (the connection is closed if the response had begun)."
    " WebSockets are exempt once accepted. Off by default.",
)
@click.option("--ssl-keyfile", type=str, default=None, help="SSL key file")
@click.option("--ssl-certfile", type=str, default=None, help="SSL certificate file")
@click.option("--ssl-keyfile-password", type=str, default=None, help="SSL keyfile password")
@click.option(
    "--ssl-version",
    type=int,
    default=int(SSL_PROTOCOL_VERSION),
    show_default=True,
    help="SSL version to use (see stdlib ssl module's)",
)
@click.option(
    "--ssl-cert-reqs",
    type=click.IntRange(0, 2),
    default=int(ssl.CERT_NONE),
    show_default=True,
    help="Whether client certificate is required (see stdlib ssl module's): 0 none, 1 optional, 2 required",
)
@click.option("--ssl-ca-certs", type=str, default=None, help="CA certificates file")
@click.option(
    "--ssl-ciphers",
    type=str,
    default=None,
    help="Ciphers to use (see stdlib ssl module's). Defaults to OpenSSL's safe defaults.",
)
@click.option(
    "--reset-contextvars",
    is_flag=True,
    default=False,
    help="Run each ASGI request in a fresh contextvars.Context (not supported yet: refused).",
)
@click.option(
    "--root-path",
    type=str,
    default="",
    help="Set the ASGI 'root_path' for applications submounted below a given URL path.",
)
@click.option(
    "--timeout-keep-alive",
    type=click.FloatRange(min=0),
    default=_defaults.TIMEOUT_KEEP_ALIVE,
    show_default=True,
    help="Close Keep-Alive connections if no new data is received within this timeout (in seconds).",
)
@click.option(
    "--timeout-graceful-shutdown",
    type=click.FloatRange(min=0),
    default=None,
    help="Maximum number of seconds to wait for graceful shutdown.",
)
@click.option(
    "--drain-delay",
    type=click.FloatRange(min=0),
    default=_defaults.DRAIN_DELAY,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM (or the first SIGINT): /readyz answers 503 at once, and the server keeps serving"
    " for this many seconds (the load balancer's time to stop sending traffic) before it stops"
    " accepting and shuts down gracefully. A second signal skips the rest of it.",
)
@click.option(
    "--limit-request-head-size",
    type=click.IntRange(min=1),
    default=_defaults.LIMIT_REQUEST_HEAD_SIZE,
    show_default=True,
    help="Maximum bytes in a request line plus its headers; larger requests get 431.",
)
@click.option(
    "--h11-max-incomplete-event-size",
    "h11_max_incomplete_event_size",
    type=click.IntRange(min=1),
    default=None,
    help="uvicorn's name for --limit-request-head-size.",
)
@click.option(
    "--limit-request-fields",
    type=click.IntRange(min=1),
    default=_defaults.LIMIT_REQUEST_FIELDS,
    show_default=True,
    help="Maximum number of header lines in a request; more get 431.",
)
@click.option(
    "--header-map",
    type=click.Choice(HEADER_MAPS),
    default=_defaults.HEADER_MAP,
    show_default=True,
    help="Request header fields whose name contains '_': drop them, refuse the request (400), or pass"
    " them to the app (dangerous: behind a proxy that strips X-Forwarded-For, an X_Forwarded_For"
    " gets through, and WSGI-style mappings read both as HTTP_X_FORWARDED_FOR).",
)
@click.option(
    "--app-dir",
    default="",
    show_default=True,
    help="Look for APP in the specified directory, by adding this to the PYTHONPATH."
    " Defaults to the current working directory.",
)
@click.option(
    "--factory",
    is_flag=True,
    default=False,
    help="Treat APP as an application factory, i.e. a () -> <ASGI app> callable.",
)
@click.option(
    "--worker-init",
    type=str,
    default=None,
    metavar="MODULE:FUNCTION",
    help="Call this function (no arguments) in every process that serves, before APP is imported:"
    " each worker, the --reload server process (for OpenTelemetry, Sentry, metrics clients).",
)
@click.option(
    "--version",
    is_flag=True,
    callback=_print_version,
    expose_value=False,
    is_eager=True,
    help="Display the fastasgi version and exit.",
)
def main(app: str, **options: Any) -> None:
    """Serve the ASGI application APP, given as "module:attribute"."""
    if options.get("log_config") is None:
        options["log_config"] = LOGGING_CONFIG
    run(app, **options)


if __name__ == "__main__":
    main()
