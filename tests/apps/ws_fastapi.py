"""FastAPI websocket endpoints for tests/test_websocket.py."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect, WebSocketException, status

app = FastAPI()

#: what the endpoints observed, read back with GET /events
EVENTS: list[dict] = []


@app.websocket("/items/{item_id}")
async def items(websocket: WebSocket, item_id: int, q: str | None = None):
    await websocket.accept()
    await websocket.send_json({"item_id": item_id, "q": q})
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"echo": data, "keys": sorted(data)})
    except WebSocketDisconnect as exc:
        EVENTS.append({"endpoint": "items", "code": exc.code, "reason": exc.reason})


@app.websocket("/bytes")
async def reversed_bytes(websocket: WebSocket):
    await websocket.accept()
    async for chunk in websocket.iter_bytes():
        await websocket.send_bytes(chunk[::-1])


@app.websocket("/guarded")
async def guarded(websocket: WebSocket, token: str | None = None):
    if token != "secret":
        # Before accept: Starlette sends websocket.close, which the server answers with 403.
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION)
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close(code=4000, reason="bye")


@app.get("/events")
def events():
    return EVENTS
