"""Starlette's FileResponse for tests/e2e/test_filesend.py (served as ``core_files:app``).

``/file?path=ABSOLUTE`` answers with that file; a spy around the app records the types of
the messages each request sent, which ``/spy`` returns with the core's file counters, so a
test can tell that the server was asked for a Path Send (and how it sent it)."""

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from fastasgi._http import _core

SENT: list[list[str]] = []
EXTENSIONS: list[list[str]] = []


async def file(request):
    return FileResponse(request.query_params["path"])


async def spy(request):
    return JSONResponse({"sent": SENT, "extensions": EXTENSIONS, "stats": _core.file_send_stats()})


starlette_app = Starlette(routes=[Route("/file", file, methods=["GET", "HEAD"]), Route("/spy", spy)])


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] == "/spy":
        return await starlette_app(scope, receive, send)
    types: list[str] = []
    SENT.append(types)
    EXTENSIONS.append(sorted(scope.get("extensions", {})))

    async def spying_send(message):
        types.append(message["type"])
        await send(message)

    await starlette_app(scope, receive, spying_send)
