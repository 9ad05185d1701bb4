"""Raw ASGI 3 apps, one per scenario.

Every server in a scenario serves the very same app object from here, so the
numbers compare servers, not apps. The apps do the least a correct app must do:
no framework, no routing, bodies prebuilt where the scenario allows it.
"""

import asyncio
import json

PLAINTEXT = b"Hello, World!"
JSON_MESSAGE = {"message": "Hello, World!"}

#: the streamed response: STREAM_CHUNKS messages of STREAM_CHUNK_SIZE bytes each
STREAM_CHUNKS = 16
STREAM_CHUNK_SIZE = 1024
STREAM_BODY = b"".join(bytes([97 + i % 26]) * STREAM_CHUNK_SIZE for i in range(STREAM_CHUNKS))

_PLAIN_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_PLAIN_BODY = {"type": "http.response.body", "body": PLAINTEXT}


async def _lifespan(receive, send):
    # Every server here speaks lifespan; answering it keeps their logs quiet.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def plaintext(scope, receive, send):
    if scope["type"] == "http":
        await send(_PLAIN_START)
        await send(_PLAIN_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def plaintext_suspend(scope, receive, send):
    """plaintext after one real suspension, as an app that awaits a database or a cache does
    before it answers."""
    if scope["type"] == "http":
        await asyncio.sleep(0)
        await send(_PLAIN_START)
        await send(_PLAIN_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def json_app(scope, receive, send):
    if scope["type"] == "http":
        # TechEmpower rule: serialise per request, not a cached body.
        body = json.dumps(JSON_MESSAGE).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def echo(scope, receive, send):
    """Answer with the request body, read in full first."""
    if scope["type"] == "http":
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect: nobody left to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def stream(scope, receive, send):
    """A response with no Content-Length, sent in STREAM_CHUNKS body messages
    (chunked transfer coding on HTTP/1.1)."""
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(STREAM_CHUNKS):
            start = i * STREAM_CHUNK_SIZE
            await send(
                {
                    "type": "http.response.body",
                    "body": STREAM_BODY[start : start + STREAM_CHUNK_SIZE],
                    "more_body": True,
                }
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def ws_echo(scope, receive, send):
    """WebSocket echo on any path; plain HTTP requests get the plaintext answer
    (the runner's readiness probe is an HTTP GET)."""
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    await send({"type": "websocket.send", "text": text})
                else:
                    await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
            elif kind == "websocket.disconnect":
                return
    elif scope["type"] == "http":
        await send(_PLAIN_START)
        await send(_PLAIN_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
