"""Apps that fail to start in each way the README's "Exit codes" table lists; uvicorn and
fastasgi serve the same ones (tests/e2e/test_exit_codes.py)."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def factory_raises():
    raise RuntimeError("the factory refuses (exit code test)")


async def startup_failed(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "the database is down (exit code test)"})


not_callable = 42
