"""The ASGI lifespan protocol (https://asgi.readthedocs.io/en/latest/specs/lifespan.html).

``--lifespan`` has uvicorn's three modes:

- ``on``: the app must support lifespan; an exception from it is a startup failure.
- ``auto`` (default): an app that raises before completing startup is taken not to support
  lifespan (logged at INFO) and the server starts anyway; ``lifespan.startup.failed`` is
  still a failure.
- ``off``: no lifespan events are sent.

The app runs as one task for the whole life of the server: startup, then (after the
server has finished the requests in flight) shutdown. ``state`` is the dict the app may
fill during startup; every request scope gets a shallow copy of it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastasgi.config import Config

logger = logging.getLogger("fastasgi.error")

_SEND_TYPES = (
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
)


class Lifespan:
    def __init__(self, config: Config) -> None:
        config.load()
        self.config = config
        self.mode = config.lifespan
        self.state: dict[str, Any] = {}
        #: set when startup failed and the server must not serve (exit code 3)
        self.should_exit = False
        self.startup_failed = False
        self.shutdown_failed = False
        self.error_occurred = False
        self._startup_done = False
        self._receive_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._startup_event: asyncio.Event | None = None
        self._shutdown_event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        if self.mode == "off":
            return
        logger.info("Waiting for application startup.")
        self._receive_queue = asyncio.Queue()
        self._startup_event = asyncio.Event()
        self._shutdown_event = asyncio.Event()
        # The task is kept on self: the loop holds only a weak reference to tasks.
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._receive_queue.put({"type": "lifespan.startup"})
        await self._startup_event.wait()

        if self.startup_failed or (self.error_occurred and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        else:
            self._startup_done = True
            logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        if self.mode == "off" or self._task is None or self.error_occurred:
            return
        assert self._receive_queue is not None and self._shutdown_event is not None
        logger.info("Waiting for application shutdown.")
        await self._receive_queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_event.wait()

        if self.shutdown_failed or (self.error_occurred and self.mode == "on"):
            logger.error("Application shutdown failed.")
        else:
            logger.info("Application shutdown complete.")

    def cancel(self) -> None:
        """Stop the app's lifespan task (forced exit while it was still busy)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def _main(self) -> None:
        assert self._startup_event is not None and self._shutdown_event is not None
        scope = {
            "type": "lifespan",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.0"},
            "state": self.state,
        }
        try:
            await self.config.loaded_app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.error_occurred = True
            if self.startup_failed or self.shutdown_failed:
                return  # the app reported it already; its message is logged
            if self.mode == "auto" and not self._startup_done:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
        finally:
            self._startup_event.set()
            self._shutdown_event.set()

    async def _receive(self) -> dict[str, Any]:
        assert self._receive_queue is not None
        return await self._receive_queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._startup_event is not None and self._shutdown_event is not None
        message_type = message.get("type")
        if message_type not in _SEND_TYPES:
            raise RuntimeError(f"Unexpected ASGI message {message_type!r} sent in the lifespan protocol.")

        if message_type.startswith("lifespan.startup."):
            if self._startup_event.is_set():
                raise RuntimeError(f"{message_type!r} sent after startup was already answered.")
            if message_type == "lifespan.startup.failed":
                self.startup_failed = True
                _log_app_message(message)
            self._startup_event.set()
        else:
            if not self._startup_event.is_set() or self._shutdown_event.is_set():
                raise RuntimeError(f"{message_type!r} sent out of order in the lifespan protocol.")
            if message_type == "lifespan.shutdown.failed":
                self.shutdown_failed = True
                _log_app_message(message)
            self._shutdown_event.set()


def _log_app_message(message: dict[str, Any]) -> None:
    if message.get("message"):
        logger.error(message["message"])
