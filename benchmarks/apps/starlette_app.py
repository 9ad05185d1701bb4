"""The Starlette scenario: the same JSON endpoint as the FastAPI one, one layer less."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def json_endpoint(request):
    return JSONResponse({"message": "Hello, World!"})


async def plaintext_endpoint(request):
    return PlainTextResponse("Hello, World!")


app = Starlette(routes=[Route("/json", json_endpoint), Route("/plaintext", plaintext_endpoint)])
