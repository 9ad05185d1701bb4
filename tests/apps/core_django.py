"""Django ASGI app with minimal settings for tests/test_frameworks.py (``core_django:app``).

This module is also its own ROOT_URLCONF.
"""

import asyncio
import json

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="fastasgi-tests-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=[],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    USE_TZ=True,
    # Django logs request errors on "django.request"; send them to stderr like the server's log
    LOGGING={
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"class": "logging.StreamHandler"}},
        "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
    },
)

from django.core.asgi import get_asgi_application  # noqa: E402 (settings first)
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def hello(request):
    return JsonResponse({"hello": "django"})


async def post_json(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    return JsonResponse({"got": json.loads(request.body)})


async def stream(request):
    async def parts():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"part{i}\n".encode()

    return StreamingHttpResponse(parts(), content_type="text/plain")


async def error(request):
    raise RuntimeError("django-boom")


def sync_view(request):
    return JsonResponse({"sync": True, "q": request.GET.get("q")})


urlpatterns = [
    path("hello", hello),
    path("json", post_json),
    path("stream", stream),
    path("error", error),
    path("sync", sync_view),
]

app = get_asgi_application()
