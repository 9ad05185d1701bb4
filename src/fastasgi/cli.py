"""The command line: ``fastasgi APP`` and ``python -m fastasgi APP``.

Flag names and defaults are uvicorn's, so ``uvicorn main:app --port 9000`` becomes
``fastasgi main:app --port 9000``. The options are the settings table's
(``fastasgi._settings``): one per setting, with its flag, default, help and bounds, each also
read from ``FASTASGI_<NAME>`` (APP from ``FASTASGI_APP``), and a uvicorn setting then from
uvicorn's ``UVICORN_<NAME>`` (``UVICORN_APP``), named in one INFO line at startup. click
checks each value's type and range (a bad one is a usage error naming the flag); ``Config``
checks how they fit together.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from fastasgi._accesslog import compile_access_format
from fastasgi._settings import CLI_SETTINGS, ENV_PREFIX, OFF_WORDS, UVICORN_ENV_PREFIX, Setting
from fastasgi._sockets import parse_bind
from fastasgi._version import __version__
from fastasgi.config import encode_header
from fastasgi.logging import LOGGING_CONFIG
from fastasgi.main import PENDING_NOTICES, run

__all__ = ["ENV_PREFIX", "main"]


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
    """click's command, with a bad value reported in one line that names the flag and the
    value, ``Error: Invalid value for '--lifespan': 'x' is not one of ...``, exit 2 (a value
    from a variable reads the same, with no usage line that would suggest a typed flag). The
    other usage errors (an unknown flag, a missing APP) are shown as click and uvicorn show
    them: the usage line and the --help hint first, exit 2."""

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
            param = exc.param if isinstance(exc, click.BadParameter) else None
            if param is None or (isinstance(exc, click.MissingParameter) and param.name == "app"):
                exc.show()  # the usage line and the --help hint, as uvicorn's
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


class _Off:
    """A number or text option that can be off: ``off`` (or ``none``) is None, the value
    Config takes for off (see ``fastasgi._settings``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() in OFF_WORDS:
            return None
        return super().convert(value, param, ctx)  # type: ignore[misc]


class _OffIntRange(_Off, click.IntRange):
    pass


class _OffFloatRange(_Off, click.FloatRange):
    pass


class _OffString(_Off, click.types.StringParamType):
    pass


class _Option(click.Option):
    """click's option, whose ``--help`` says ``[default: off]`` for a setting off by default
    (click shows nothing for a None default)."""

    def __init__(self, *args: Any, off_by_default: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.off_by_default = off_by_default

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        if self.off_by_default:
            extra["default"] = OFF_WORDS[0]
        return extra


#: the options that check their value as it is parsed (a usage error naming the flag, exit 2)
#: or act on it at once, by setting name
_CALLBACKS: dict[str, Callable[..., Any]] = {
    "bind": _check_binds,
    "headers": _check_headers,
    "access_log_format": _check_access_log_format,
    "env_file": _load_env_file,
}
#: read before the other options, so that FASTASGI_* variables in --env-file set options too
_EAGER = {"env_file"}


def _click_type(entry: Setting) -> Any:
    """The click type of a setting's option, from its kind and bounds."""
    kind = entry.cli_kind or entry.kind
    bounds: dict[str, Any] = {"min": entry.minimum, "max": entry.maximum}
    if kind == "int" and entry.minimum is not None:
        return (_OffIntRange if entry.off else click.IntRange)(**bounds)
    if kind == "float" and entry.minimum is not None:
        return (_OffFloatRange if entry.off else click.FloatRange)(**bounds, min_open=entry.min_open)
    if entry.cli_choices is not None or kind == "choice":
        choices = list(entry.cli_choices if entry.cli_choices is not None else entry.choices)
        return _ChoiceOrImportString(choices) if entry.import_string else click.Choice(choices)
    if kind == "path":
        return click.Path(exists=True)
    if kind == "file":
        return click.Path(exists=True, dir_okay=False)
    if kind == "bool":
        return bool
    if kind == "int":
        return int
    return _OffString() if entry.off else str


def _option(entry: Setting) -> Callable[[Any], Any]:
    """The click option of one setting of the table."""
    # click takes the first variable set (and not empty) of the list: FASTASGI_* first
    envvars = list(entry.envvar_names)
    if entry.uvicorn_envvar is not None:
        envvars.append(entry.uvicorn_envvar)
    kwargs: dict[str, Any] = {
        "cls": _Option,
        "help": entry.help,
        "envvar": envvars[0] if len(envvars) == 1 else envvars,
    }
    if entry.kind == "switch":
        declarations = [f"{entry.flag}/--no-{entry.flag[2:]}", entry.name]
    else:
        declarations = [*entry.flags, entry.name] if entry.flags else [entry.flag, entry.name]
    if entry.kind == "flag":
        kwargs["is_flag"] = True
    elif entry.kind != "switch":
        kwargs["type"] = _click_type(entry)
    if entry.multiple:
        kwargs["multiple"] = True  # no default: click's own (none given) for repeatable options
    else:
        kwargs["default"] = entry.get_cli_default()
        kwargs["show_default"] = entry.show_default and kwargs["default"] is not None
        kwargs["off_by_default"] = entry.off and kwargs["default"] is None
    if entry.metavar is not None:
        kwargs["metavar"] = entry.metavar
    if entry.name in _CALLBACKS:
        kwargs["callback"] = _CALLBACKS[entry.name]
    if entry.name in _EAGER:
        kwargs["is_eager"] = True
    return click.option(*declarations, **kwargs)


APP_ENVVAR = f"{ENV_PREFIX}_APP"
UVICORN_APP_ENVVAR = f"{UVICORN_ENV_PREFIX}_APP"


def _from_uvicorn_env(ctx: click.Context) -> list[str]:
    """The settings (and APP) whose value came from a ``UVICORN_*`` variable: read from
    the environment, with no ``FASTASGI_*`` variable of theirs set (click skips empty
    ones, and so does this)."""
    source = click.ParameterSource.ENVIRONMENT
    taken = []
    if ctx.get_parameter_source("app") is source and not os.environ.get(APP_ENVVAR):
        taken.append("app")
    for entry in CLI_SETTINGS:
        if entry.uvicorn_envvar is None or ctx.get_parameter_source(entry.name) is not source:
            continue
        if not any(os.environ.get(name) for name in entry.envvar_names):
            taken.append(entry.name)
    return taken


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every setting of the table as an option, in the table's order (click lists options in
    the order their decorators are written, which is the reverse of the order they run in)."""
    for entry in reversed(CLI_SETTINGS):
        command = _option(entry)(command)
    return command


@click.command(
    cls=_Command,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": ENV_PREFIX},
)
@click.argument("app", envvar=[APP_ENVVAR, UVICORN_APP_ENVVAR])
@_settings_options
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
    from_uvicorn_env = _from_uvicorn_env(click.get_current_context())
    if from_uvicorn_env:
        PENDING_NOTICES.append("Settings from UVICORN_* environment variables: " + ", ".join(from_uvicorn_env))
    # through the module's name `run`, as uvicorn's command line calls it (a test that patches
    # the command line's run sees what it passes)
    run(app, **options)


if __name__ == "__main__":
    main()
