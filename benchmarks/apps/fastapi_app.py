"""The FastAPI scenario: a typical JSON endpoint, so the table shows the server's
share of a real framework's per-request cost."""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/json")
async def json_endpoint():
    return {"message": "Hello, World!"}


@app.get("/plaintext", response_class=PlainTextResponse)
async def plaintext_endpoint():
    return "Hello, World!"
