"""The example app the image serves when no other is given (deploy/Dockerfile, APP_SRC).

A raw ASGI 3 app with lifespan, so that the container's readiness (/readyz on the admin port)
follows a real lifespan startup. Replace this directory with your own project: the image
serves ``$FASTASGI_APP`` (default ``main:app``) from /app.
"""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # open database pools, load models, warm caches here
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        body = b"Hello from fastasgi in a container\n"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
