"""``--reload``: serve from a child process and restart it when a watched file changes.

For development. The reloader binds the sockets once (the port stays open across
restarts), starts the server in a fresh interpreter (multiprocessing ``spawn``, so every
module of the app is imported again) and watches files with watchfiles (an optional
dependency: ``pip install watchfiles`` or ``fastasgi[standard]``).

What is watched is uvicorn's: the current directory unless ``--reload-dir`` is given;
files matching ``*.py`` plus ``--reload-include`` patterns; not ``.*``, ``.py[cod]``,
``.sw.*``, ``~*`` nor ``--reload-exclude`` patterns (a default pattern named in the other
option is dropped). A ``--reload-include`` that is a directory is watched too, a
``--reload-exclude`` that is a directory is not. Unlike uvicorn, the exclude patterns also
apply to the directories between the watched directory and the file, so a change inside
``.venv/`` or ``.git/`` never restarts the server.

If the server process exits (say the app does not import after an edit), the reloader logs
it and waits for the next change to start it again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Generator
from fnmatch import fnmatch
from pathlib import Path
from types import FrameType
from typing import Any

from fastasgi.config import Config, ConfigError
from fastasgi.logging import style
from fastasgi.supervisors._child import run_reload_child

logger = logging.getLogger("fastasgi.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")

#: after ``--timeout-graceful-shutdown``, how long the server process still gets
KILL_GRACE = 3.0
#: how often the watcher wakes up without changes (to notice a server process that exited)
_IDLE_WAKEUP_MS = 1000

_spawn = multiprocessing.get_context("spawn")


class FileFilter:
    """Which changed paths restart the server."""

    def __init__(
        self, roots: list[Path], includes: list[str], excludes: list[str], exclude_dirs: list[Path]
    ) -> None:
        self.roots = roots
        self.includes = includes
        self.excludes = excludes
        self.exclude_dirs = exclude_dirs

    def __call__(self, path: Path) -> bool:
        for pattern in self.includes:
            if path.match(pattern):
                break
        else:
            return False
        if any(str(path).endswith(pattern) for pattern in self.includes if not _is_glob(pattern)):
            return True  # named explicitly (``--reload-include .env``): wins over the excludes
        if any(directory in path.parents for directory in self.exclude_dirs):
            return False
        if any(path.match(pattern) for pattern in self.excludes):
            return False
        for root in self.roots:
            if root in path.parents:
                between = path.relative_to(root).parts[:-1]
                return not any(fnmatch(part, pattern) for part in between for pattern in self.excludes)
        return True


def watch_settings(config: Config) -> tuple[list[Path], FileFilter]:
    """The directories to watch and the filter, from ``--reload-dir/-include/-exclude``."""
    dirs = _as_list(config.reload_dirs)
    includes = _as_list(config.reload_includes)
    excludes = _as_list(config.reload_excludes)

    roots = [Path(d).resolve() for d in dirs if Path(d).is_dir()]
    roots += [Path(p).resolve() for p in includes if Path(p).is_dir()]
    exclude_dirs = [Path(p).resolve() for p in excludes if Path(p).is_dir()]
    roots = [root for root in roots if not any(e == root or e in root.parents for e in exclude_dirs)]
    if not roots:
        if dirs:
            logger.warning(
                "Provided reload directories %s did not contain valid directories, watching current working directory.",
                dirs,
            )
        roots = [Path.cwd()]
    # A directory inside another watched one is watched already.
    roots = sorted({root for root in roots if not any(other in root.parents for other in roots)})

    include_patterns = [p for p in DEFAULT_INCLUDES if p not in excludes]
    include_patterns += [p for p in includes if not Path(p).is_dir() and p not in include_patterns]
    exclude_patterns = [p for p in DEFAULT_EXCLUDES if p not in includes]
    exclude_patterns += [p for p in excludes if not Path(p).is_dir() and p not in exclude_patterns]
    return roots, FileFilter(roots, include_patterns, exclude_patterns, exclude_dirs)


class ChangeReload:
    name = "WatchFiles"

    def __init__(self, config: Config) -> None:
        if not isinstance(config.app, str):
            raise ConfigError(
                '--reload needs the application as an import string ("module:attribute"), '
                "so that a new process can import it again"
            )
        try:
            import watchfiles
        except ImportError:
            raise ConfigError(
                "--reload needs watchfiles: pip install watchfiles (or fastasgi[standard])"
            ) from None
        self._watch = watchfiles.watch
        if config.workers is not None and config.workers > 1:
            logger.warning('"workers" flag is ignored when reloading is enabled.')
        self.config = config
        self.pid = os.getpid()
        self.dirs, self.filter = watch_settings(config)
        self.should_exit = threading.Event()
        self.stop_signals = 0
        self.process: Any = None
        self._exit_noticed = False

    def run(self, sockets: list[socket.socket]) -> int:
        logger.info("Will watch for changes in these directories: %s", [str(d) for d in self.dirs])
        logger.info(
            "Started reloader process [%d] using %s",
            self.pid,
            self.name,
            extra={
                "color_message": "Started reloader process ["
                + style("%d", fg="cyan", bold=True)
                + "] using "
                + style("%s", fg="cyan", bold=True)
            },
        )
        with self._signal_handling():
            self._start(sockets)
            watcher = self._watch(
                *self.dirs,
                watch_filter=lambda change, path: self.filter(Path(path)),
                stop_event=self.should_exit,
                rust_timeout=_IDLE_WAKEUP_MS,
                yield_on_timeout=True,
                ignore_permission_denied=True,
            )
            for changes in watcher:
                self._notice_exit()
                if changes:
                    paths = sorted({Path(path) for _, path in changes})
                    logger.warning(
                        "%s detected changes in %s. Reloading...",
                        self.name,
                        ", ".join(map(_display_path, paths)),
                    )
                    self._stop()
                    if self.should_exit.is_set():
                        break
                    self._start(sockets)
                if self.should_exit.wait(self.config.reload_delay):
                    break
            self._stop()
        logger.info(
            "Stopping reloader process [%d]",
            self.pid,
            extra={"color_message": "Stopping reloader process [" + style("%d", fg="cyan", bold=True) + "]"},
        )
        return 0

    def _start(self, sockets: list[socket.socket]) -> None:
        self.process = _spawn.Process(
            target=run_reload_child,
            kwargs={"config": self.config, "sockets": sockets, "reloader_pid": self.pid},
            name="fastasgi-server",
        )
        try:
            self.process.start()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"--reload: the settings cannot be passed to the server process: {exc}"
            ) from None
        self._exit_noticed = False

    def _stop(self) -> None:
        """Stop the server process gracefully; a second stop signal forces it, a third or
        ``--timeout-graceful-shutdown`` (plus ``KILL_GRACE``) kills it."""
        process = self.process
        if process is None or process.exitcode is not None:
            return
        process.terminate()
        timeout = self.config.timeout_graceful_shutdown
        kill_at = None if timeout is None else time.monotonic() + timeout + KILL_GRACE
        forced = False
        while process.exitcode is None:
            process.join(0.1)
            if self.stop_signals >= 3 or (kill_at is not None and time.monotonic() >= kill_at):
                process.kill()
                process.join()
            elif self.stop_signals == 2 and not forced:
                forced = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGINT)

    def _notice_exit(self) -> None:
        if self.process is not None and self.process.exitcode is not None and not self._exit_noticed:
            self._exit_noticed = True
            logger.warning(
                "Server process [%d] exited with code %d; waiting for a change to start it again.",
                self.process.pid,
                self.process.exitcode,
            )

    @contextlib.contextmanager
    def _signal_handling(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            raise ConfigError("--reload must be started from the main thread: it handles signals")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stop_signals += 1
        self.should_exit.set()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    return [os.fspath(v) for v in value]


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def _display_path(path: Path) -> str:
    try:
        return f"'{path.relative_to(Path.cwd())}'"
    except ValueError:
        return f"'{path}'"
