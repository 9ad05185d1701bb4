"""The settings table (fastasgi._settings) and what is built from it: every entry is a Config
keyword with its default, a click option with its flag, FASTASGI_* variable and default, and a
line of ``fastasgi --help``; the command line has no option the table does not declare; and
off is spelled one way."""

from __future__ import annotations

import inspect
import os

import click
import pytest
from click.testing import CliRunner

from fastasgi import _defaults, _settings
from fastasgi._settings import CLI_SETTINGS, SETTINGS
from fastasgi.cli import main
from fastasgi.config import Config
from fastasgi.logging import LOG_LEVELS

pytestmark = pytest.mark.usefixtures("restore_logging")

#: what the command line has that is no setting: the APP argument and --version
NOT_SETTINGS = {"app", "version"}
OPTIONS = {param.name: param for param in main.params}
OFF_BY_DEFAULT = [entry for entry in CLI_SETTINGS if entry.off and entry.get_cli_default() is None]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith((f"{_settings.ENV_PREFIX}_", f"{_settings.UVICORN_ENV_PREFIX}_")):
            monkeypatch.delenv(name)  # what the tests set is all the command line reads


@pytest.fixture(scope="module")
def help_text() -> str:
    # wide, so that no flag is broken over two lines
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_line_declares_no_option_outside_the_table():
    declared = [param.name for param in main.params if param.name not in NOT_SETTINGS]
    assert declared == [entry.name for entry in CLI_SETTINGS]  # the same ones, in the table's order


@pytest.mark.parametrize("entry", CLI_SETTINGS, ids=lambda entry: entry.name)
def test_every_entry_is_a_click_option(entry, help_text):
    option = OPTIONS[entry.name]
    assert isinstance(option, click.Option)
    assert entry.flag in option.opts
    assert set(entry.flags) <= set(option.opts)
    envvar = option.envvar if isinstance(option.envvar, (list, tuple)) else [option.envvar]
    fallback = () if entry.uvicorn_envvar is None else (entry.uvicorn_envvar,)
    assert tuple(envvar) == entry.envvar_names + fallback  # FASTASGI_* first: it wins
    assert all(name.startswith(f"{_settings.ENV_PREFIX}_") for name in entry.envvar_names)
    assert option.multiple is entry.multiple
    assert option.is_flag is (entry.kind in ("flag", "switch"))
    if not entry.multiple:
        assert option.default == entry.get_cli_default()
    assert option.help == entry.help
    assert f" {entry.flag} " in help_text or f"{entry.flag}," in help_text or f" {entry.flag}\n" in help_text


@pytest.mark.parametrize("entry", SETTINGS, ids=lambda entry: entry.name)
def test_every_entry_is_a_config_keyword_with_its_default(entry):
    parameter = inspect.signature(Config).parameters[entry.name]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default == entry.get_default()
    if entry.default_from is None and entry.name != "forwarded_allow_ips":
        # (_defaults.FORWARDED_ALLOW_IPS is what None means for it: the fallback)
        assert getattr(_defaults, entry.name.upper()) == entry.get_default()


def test_config_takes_every_default_by_name():
    given = Config("app:app", **{entry.name: entry.get_default() for entry in SETTINGS})
    default = Config("app:app")
    for entry in SETTINGS:
        assert getattr(given, entry.name) == getattr(default, entry.name), entry.name


def test_config_refuses_an_unknown_keyword():
    with pytest.raises(TypeError, match="unexpected keyword argument 'prot'"):
        Config("app:app", prot=8000)


def test_a_click_parse_is_a_valid_config():
    # the command line's defaults (--app-dir "", --ssl-version 17) are values Config takes
    params = main.make_context("fastasgi", ["app:app"]).params
    app = params.pop("app")
    Config(app, **params)


def test_the_environment_sets_options(monkeypatch):
    monkeypatch.setenv("FASTASGI_LIMIT_CONCURRENCY", "7")
    monkeypatch.setenv("FASTASGI_TIMEOUT_REQUEST", "off")
    monkeypatch.setenv("FASTASGI_RELOAD_DIRS", ".")
    params = main.make_context("fastasgi", ["app:app"]).params
    assert params["limit_concurrency"] == 7
    assert params["timeout_request"] is None
    assert params["reload_dirs"] == (".",)


# -- UVICORN_* variables -----------------------------------------------------------------------

UVICORN_SETTINGS = [entry for entry in CLI_SETTINGS if entry.uvicorn_envvar is not None]


def test_uvicorn_variables_are_the_ones_uvicorn_reads():
    """Each uvicorn setting falls back to the variable uvicorn's own click command reads for it
    (its auto_envvar_prefix and the option's name), and only those: fastasgi's own settings
    have none."""
    from uvicorn import main as uvicorn_main  # the click command

    assert isinstance(uvicorn_main, click.Command)
    prefix = uvicorn_main.context_settings["auto_envvar_prefix"]
    assert prefix == _settings.UVICORN_ENV_PREFIX
    theirs = {param.name: f"{prefix}_{param.name.upper()}" for param in uvicorn_main.params}
    for entry in CLI_SETTINGS:
        if entry.uvicorn:
            assert entry.uvicorn_envvar == theirs[entry.name], entry.name
        else:
            assert entry.uvicorn_envvar is None, entry.name
    uvicorn_app = next(param.envvar for param in uvicorn_main.params if param.name == "app")
    assert OPTIONS["app"].envvar == ["FASTASGI_APP", uvicorn_app]


def _env_sample(entry, tmp_path) -> str:
    """A value of the entry's kind that click takes and that is not its default."""
    kind = entry.cli_kind or entry.kind
    if entry.name == "headers":
        return "x-from-env:1"
    if kind in ("flag", "switch", "bool"):
        return "false" if entry.get_cli_default() else "true"
    if entry.cli_choices is not None or kind == "choice":
        choices = [c for c in (entry.cli_choices or entry.choices) if c != entry.get_cli_default()]
        return choices[0]
    if kind in ("int", "float"):
        value = entry.maximum if entry.maximum is not None else (entry.minimum or 0) + 3
        return str(int(value) if kind == "int" else float(value))
    if kind in ("path", "file"):
        path = tmp_path / f"{entry.name}.txt"
        path.write_text("")
        return str(path)
    return "from-env"


@pytest.mark.parametrize("entry", UVICORN_SETTINGS, ids=lambda entry: entry.name)
def test_every_uvicorn_setting_falls_back_to_its_uvicorn_variable(entry, monkeypatch, tmp_path):
    from fastasgi.cli import _from_uvicorn_env

    unset = main.make_context("fastasgi", ["app:app"]).params[entry.name]
    monkeypatch.setenv(entry.uvicorn_envvar, _env_sample(entry, tmp_path))
    ctx = main.make_context("fastasgi", ["app:app"])
    assert ctx.get_parameter_source(entry.name) is click.ParameterSource.ENVIRONMENT
    assert ctx.params[entry.name] != unset
    assert _from_uvicorn_env(ctx) == [entry.name]


@pytest.mark.parametrize("entry", UVICORN_SETTINGS, ids=lambda entry: entry.name)
def test_the_fastasgi_variable_wins_over_uvicorns(entry, monkeypatch, tmp_path):
    from fastasgi.cli import _from_uvicorn_env

    monkeypatch.setenv(entry.envvar_names[-1], _env_sample(entry, tmp_path))
    ours = main.make_context("fastasgi", ["app:app"]).params[entry.name]
    # a value no setting takes: parsing it would be a usage error, so it is not even read
    monkeypatch.setenv(entry.uvicorn_envvar, "not-a-value:of any kind")
    ctx = main.make_context("fastasgi", ["app:app"])
    assert ctx.params[entry.name] == ours
    assert _from_uvicorn_env(ctx) == []


def test_an_empty_fastasgi_variable_is_unset(monkeypatch):
    # click skips empty variables: UVICORN_PORT is used, and so named
    from fastasgi.cli import _from_uvicorn_env

    monkeypatch.setenv("FASTASGI_PORT", "")
    monkeypatch.setenv("UVICORN_PORT", "9123")
    monkeypatch.setenv("UVICORN_APP", "env:app")
    monkeypatch.delenv("FASTASGI_APP", raising=False)
    ctx = main.make_context("fastasgi", [])
    assert (ctx.params["app"], ctx.params["port"]) == ("env:app", 9123)
    assert _from_uvicorn_env(ctx) == ["app", "port"]


def test_the_command_line_wins_over_uvicorn_variables(monkeypatch):
    from fastasgi.cli import _from_uvicorn_env

    monkeypatch.setenv("UVICORN_PORT", "9123")
    ctx = main.make_context("fastasgi", ["app:app", "--port", "9124"])
    assert ctx.params["port"] == 9124
    assert _from_uvicorn_env(ctx) == []


def test_log_level_names_are_the_logging_modules():
    assert tuple(LOG_LEVELS) == _settings.LOG_LEVEL_NAMES


def test_gunicorn_names_are_gunicorn_settings():
    gunicorn_config = pytest.importorskip("gunicorn.config")
    known = {setting.name for setting in gunicorn_config.KNOWN_SETTINGS}
    for entry in SETTINGS:
        if entry.gunicorn is not None:
            assert entry.gunicorn in known, (entry.name, entry.gunicorn)


def test_entries_are_consistent():
    for entry in SETTINGS:
        assert entry.kind in _settings.KINDS, entry.name
        assert entry.since, entry.name
        if entry.kind == "choice":
            assert entry.get_default() in entry.choices, entry.name
            assert set(entry.cli_choices or ()) <= set(entry.choices), entry.name
        if entry.zero_off:
            assert entry.off, entry.name
        if entry.kind == "object":
            assert not entry.on_command_line, entry.name


# --- off, spelled one way ------------------------------------------------------------------


@pytest.mark.parametrize("entry", [e for e in SETTINGS if e.off], ids=lambda entry: entry.name)
@pytest.mark.parametrize("spelling", [None, "off", "OFF", "none", " Off "])
def test_off_from_python_is_none(entry, spelling):
    assert getattr(Config("app:app", **{entry.name: spelling}), entry.name) is None


@pytest.mark.parametrize("entry", [e for e in CLI_SETTINGS if e.off], ids=lambda entry: entry.name)
@pytest.mark.parametrize("spelling", ["off", "none", "Off"])
def test_off_on_the_command_line_is_none(entry, spelling):
    params = main.make_context("fastasgi", ["app:app", entry.flag, spelling]).params
    assert params[entry.name] is None
    assert getattr(Config(params.pop("app"), **params), entry.name) is None


@pytest.mark.parametrize("name", ["timeout_request_head", "timeout_request_body", "timeout_request"])
def test_zero_is_off_where_it_always_was(name):
    assert _settings.BY_NAME[name].zero_off
    assert getattr(Config("app:app", **{name: 0}), name) is None
    assert getattr(Config("app:app", **{name: 0.0}), name) is None


def test_zero_keeps_its_meaning_elsewhere():
    assert Config("app:app", limit_request_body=0).limit_request_body == 0  # no body
    assert Config("app:app", timeout_graceful_shutdown=0).timeout_graceful_shutdown == 0  # no wait
    assert Config("app:app", drain_delay=0).drain_delay == 0


@pytest.mark.parametrize("entry", OFF_BY_DEFAULT, ids=lambda entry: entry.name)
def test_help_says_default_off(entry):
    record = OPTIONS[entry.name].get_help_record(main.make_context("fastasgi", ["app:app"]))
    assert record is not None and "[default: off" in record[1], record


def test_proxy_protocol_takes_gunicorns_booleans():
    assert Config("app:app", proxy_protocol=False).proxy_protocol == "off"
    assert Config("app:app", proxy_protocol=True).proxy_protocol == "auto"
    assert Config("app:app", proxy_protocol="v2").proxy_protocol == "v2"
