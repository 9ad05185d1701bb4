"""Starlette websocket endpoints for tests/test_websocket.py."""

from starlette.applications import Starlette
from starlette.endpoints import WebSocketEndpoint
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

#: close codes seen by on_disconnect, read back with GET /events
EVENTS: list[int] = []


class Shout(WebSocketEndpoint):
    encoding = "text"

    async def on_connect(self, websocket: WebSocket) -> None:
        subprotocol = "chat" if "chat" in websocket.scope["subprotocols"] else None
        await websocket.accept(subprotocol=subprotocol, headers=[(b"x-endpoint", b"shout")])

    async def on_receive(self, websocket: WebSocket, data: str) -> None:
        await websocket.send_text(data.upper())

    async def on_disconnect(self, websocket: WebSocket, close_code: int) -> None:
        EVENTS.append(close_code)


async def denied(websocket: WebSocket) -> None:
    # The ASGI WebSocket Denial Response extension, through Starlette's API.
    response = PlainTextResponse("members only", status_code=401, headers={"www-authenticate": "Basic"})
    await websocket.send_denial_response(response)


async def events(request):
    return JSONResponse(EVENTS)


app = Starlette(
    routes=[
        WebSocketRoute("/shout", Shout),
        WebSocketRoute("/denied", denied),
        Route("/events", events),
    ]
)
