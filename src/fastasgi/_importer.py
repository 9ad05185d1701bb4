"""Loading the application: ``"module:attr"`` import strings, factories, ASGI 2.

``load_app()`` is what ``Config.load`` does with ``--factory`` and ``--interface``; its
errors are ``LoadError``, one line in uvicorn's wording (``Config`` reports them as a
``ConfigError``). An exception raised by the user's own code while it is imported or built
keeps its traceback, trimmed to start in the user's code.

``LoadError.in_app_code`` tells the two kinds apart for the exit code, as uvicorn's differ:
uvicorn exits 3 when it cannot find or call the app (its own "Error loading ASGI app"
messages) and 1 when the app's code raised (the exception escapes uvicorn, traceback and all).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
import types
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger("fastasgi.error")


class LoadError(Exception):
    """The application (or another object named by an import string) cannot be loaded.
    ``show_cause`` is set when the cause's traceback helps (an exception raised by the
    user's own code); ``in_app_code`` when the user's code failed (it raised while imported
    or called as the factory), not the import string or the factory's signature."""

    def __init__(self, message: str, *, show_cause: bool = False, in_app_code: bool = False) -> None:
        super().__init__(message)
        self.show_cause = show_cause
        self.in_app_code = in_app_code or show_cause


def load_app(app: Any, *, factory: bool, interface: str) -> tuple[Any, str]:
    """Import ``app`` (``"module:attr"`` or the object itself), call it when it is a
    factory (``factory``, or a function taking no arguments, with a warning), and decide
    ASGI 3 or ASGI 2 when ``interface`` is ``"auto"``. Returns the ASGI 3 application (an
    ASGI 2 one wrapped) and the interface. Raises ``LoadError``."""
    loaded = import_from_string(app)
    if factory:
        loaded = _call_factory(loaded)
    elif _looks_like_factory(loaded):
        logger.warning(
            "ASGI app factory detected. Using it, but please consider setting the --factory flag explicitly."
        )
        loaded = _call_factory(loaded)

    if not callable(loaded):
        raise LoadError(
            f"Error loading ASGI app. {_describe(app)} is not callable (got {type(loaded).__name__})."
        )

    if interface == "auto":
        interface = "asgi3" if _is_asgi3(loaded) else "asgi2"
    if interface == "asgi2":
        loaded = ASGI2Adapter(loaded)
    return loaded, interface


def _describe(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def import_from_string(import_str: Any, what: str = "ASGI app") -> Any:
    """Resolve ``"module:attr"`` (``attr`` may be dotted) to the object it names. Anything
    that is not a string is returned as it is. Raises ``LoadError`` with a one-line
    message (uvicorn's wording) when the string is malformed, the module is missing or the
    attribute is; an import error raised inside the module is reported in one line with
    where it happened."""
    if not isinstance(import_str, str):
        return import_str

    module_str, _, attrs_str = import_str.partition(":")
    if not module_str or not attrs_str:
        raise LoadError(
            f'Error loading {what}. Import string "{import_str}" must be in format "<module>:<attribute>".'
        )

    try:
        module = importlib.import_module(module_str)
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and _is_module_or_parent(exc.name, module_str):
            raise LoadError(f'Error loading {what}. Could not import module "{module_str}".') from None
        where = _where(exc)
        raise LoadError(
            f'Error loading {what}. Could not import module "{module_str}": {exc}{where}.',
            in_app_code=True,
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever the app's module raises, reported as a LoadError
        raise LoadError(
            f'Error loading {what}. Importing module "{module_str}" raised {type(exc).__name__}: {exc}',
            show_cause=True,
        ) from _trimmed(exc)

    instance: Any = module
    try:
        for attr_str in attrs_str.split("."):
            instance = getattr(instance, attr_str)
    except AttributeError:
        raise LoadError(
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
        raise LoadError(f"Error loading ASGI app factory: {exc}") from None
    except ValueError:
        pass  # no signature to check (some builtins); just call it
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - whatever the factory raises, reported as a LoadError
        raise LoadError(
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
