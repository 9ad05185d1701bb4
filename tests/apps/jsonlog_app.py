"""Raw ASGI app for tests/e2e/test_json_logs_worker_init.py.

When imported it appends "<pid> <init ran first>" to ``$WORKER_INIT_DIR/app.imports``
(when that variable is set): whether ``worker_init_hooks.record`` ran in this process
before the app was imported.

/raise      raises (the server logs "Exception in ASGI application" with the traceback)
/pid        this process's id
anything else: "hello" (5 bytes)
"""

import os

import worker_init_hooks

if os.environ.get("WORKER_INIT_DIR"):
    with open(os.path.join(os.environ["WORKER_INIT_DIR"], "app.imports"), "a") as file:
        file.write(f"{os.getpid()} {worker_init_hooks.ran_in == os.getpid()}\n")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/raise":
        raise RuntimeError("boom \x1b[31m in the app")
    body = str(os.getpid()).encode() if scope["path"] == "/pid" else b"hello"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})
