"""The command line: ``fastasgi APP`` and ``python -m fastasgi APP``.

Flag names and defaults are uvicorn's, so ``uvicorn main:app --port 9000`` becomes
``fastasgi main:app --port 9000``. click checks each value's type and range (a bad one is a
usage error naming the flag); ``Config`` checks how they fit together.
"""

from __future__ import annotations

import platform
from typing import Any

import click

from fastasgi._version import __version__
from fastasgi.config import DEFAULT_LIMIT_REQUEST_HEAD_SIZE, LIFESPAN_MODES, encode_header
from fastasgi.logging import LOG_LEVELS
from fastasgi.server import run


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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("app")
@click.option("--host", type=str, default="127.0.0.1", show_default=True, help="Bind socket to this host.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Bind socket to this port. If 0, an available port will be picked.",
)
@click.option("--uds", type=str, default=None, help="Bind to a UNIX domain socket.")
@click.option("--fd", type=click.IntRange(min=0), default=None, help="Bind to socket from this file descriptor.")
@click.option(
    "--loop",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    help="Event loop implementation (auto: uvloop when installed).",
)
@click.option(
    "--ws",
    type=click.Choice(["auto", "websockets", "none"]),
    default="auto",
    show_default=True,
    help="WebSocket protocol implementation.",
)
@click.option(
    "--ws-max-size",
    type=click.IntRange(min=1),
    default=16777216,
    show_default=True,
    help="WebSocket max size message in bytes.",
)
@click.option(
    "--ws-max-queue",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="The maximum length of the WebSocket message queue.",
)
@click.option(
    "--ws-ping-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="WebSocket ping interval in seconds.",
)
@click.option(
    "--ws-ping-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=20.0,
    show_default=True,
    help="WebSocket ping timeout in seconds.",
)
@click.option(
    "--ws-per-message-deflate",
    type=bool,
    default=True,
    show_default=True,
    help="WebSocket per-message-deflate compression.",
)
@click.option(
    "--lifespan",
    type=click.Choice(LIFESPAN_MODES),
    default="auto",
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
@click.option("--server-header/--no-server-header", default=True, help="Enable/Disable default Server header.")
@click.option("--date-header/--no-date-header", default=True, help="Enable/Disable default Date header.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    callback=_check_headers,
    help="Specify custom default HTTP response headers as a Name:Value pair (repeatable).",
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
    default=5,
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
    "--limit-request-head-size",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT_REQUEST_HEAD_SIZE,
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
    default=100,
    show_default=True,
    help="Maximum number of header lines in a request; more get 431.",
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
    "--version",
    is_flag=True,
    callback=_print_version,
    expose_value=False,
    is_eager=True,
    help="Display the fastasgi version and exit.",
)
def main(app: str, **options: Any) -> None:
    """Serve the ASGI application APP, given as "module:attribute"."""
    run(app, **options)


if __name__ == "__main__":
    main()
