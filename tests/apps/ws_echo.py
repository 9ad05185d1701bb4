"""Raw ASGI websocket app for tests/test_websocket.py: one behaviour per path.

What the app observes (disconnect codes, counts) is recorded in ``EVENTS`` and read back by the
tests over the ``/events`` websocket, or over HTTP ``GET /events``.
"""

import asyncio
import json
import sys

#: path -> list of observations, e.g. {"/echo": [{"disconnect": 1000, "reason": ""}]}
EVENTS: dict[str, list] = {}

# The page the headless browser loads: it opens a websocket back to this server, echoes a
# text and a binary message, and reports what came back with a second HTTP request.
BROWSER_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>ws test</title></head>
<body><pre id="result">pending</pre>
<script>
const out = document.getElementById("result");
const t = new URLSearchParams(location.search).get("t") || "";
const ws = new WebSocket("ws://" + location.host + "/echo?from=browser&t=" + t, ["chat"]);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => { ws.send("h\\u00e9llo browser"); ws.send(new Uint8Array([1, 2, 3, 250])); };
ws.onmessage = (ev) => {
  got.push(typeof ev.data === "string" ? ev.data : Array.from(new Uint8Array(ev.data)).join(","));
  if (got.length === 2) {
    const report = JSON.stringify({protocol: ws.protocol, extensions: ws.extensions, got: got});
    ws.close(4321, "done");
    out.textContent = "reporting " + report;
    fetch("/report?t=" + t, {method: "POST", body: report})
      .then((r) => {
        out.textContent = "reported " + r.status + " " + report;
        // and what the page shows now, so the test sees the rendered result too
        return fetch("/report?t=" + t + "&shown=1", {method: "POST", body: JSON.stringify({text: out.textContent})});
      });
  }
};
ws.onerror = () => { out.textContent = "websocket error"; };
</script></body></html>
"""


def key(scope):
    """Events are filed under path?query, so each test can use a query token of its own."""
    query_string = scope["query_string"].decode()
    return scope["path"] + ("?" + query_string if query_string else "")


def record(scope, item):
    EVENTS.setdefault(key(scope), []).append(item)


async def wait_disconnect(receive, scope):
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(scope, {"disconnect": message["code"], "reason": message.get("reason", "")})
            print(f"disconnect {key(scope)} {message['code']}", flush=True)
            return message


def route(scope):
    """The path below --root-path (ASGI: path includes root_path)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def query(scope):
    return dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await http_app(scope, receive, send)
        return
    path = route(scope)
    message = await receive()
    assert message["type"] == "websocket.connect", message
    handler = scope_route if path.startswith("/scope") else ROUTES.get(path, echo)
    await handler(scope, receive, send)


async def http_app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status, ctype = 200, b"text/plain"
    if route(scope) == "/page":
        out, ctype = BROWSER_PAGE, b"text/html; charset=utf-8"
    elif route(scope) == "/report":
        record(scope, json.loads(body))
        out = b"ok"
    elif route(scope) == "/events":
        out, ctype = json.dumps(EVENTS).encode(), b"application/json"
    else:
        # Also what an upgrade request gets under --ws none.
        out = b"plain http " + scope["path"].encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": out})


async def echo(scope, receive, send):
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": scope["subprotocols"][0] if scope["subprotocols"] else None,
        }
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(scope, {"disconnect": message["code"], "reason": message.get("reason", "")})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_route(scope, receive, send):
    await send({"type": "websocket.accept"})
    shown = {k: v for k, v in scope.items() if k != "state"}
    shown["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["has_state"] = "state" in scope
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await wait_disconnect(receive, scope)


async def subprotocol(scope, receive, send):
    # Picks "chat" when offered, as a real server-side negotiation would.
    chosen = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": chosen, "headers": [(b"x-accept", b"yes")]})
    await send({"type": "websocket.send", "text": json.dumps(scope["subprotocols"])})
    await wait_disconnect(receive, scope)


async def deny(scope, receive, send):
    await send({"type": "websocket.close", "code": 1008})
    message = await receive()
    record(scope, {"after_deny": message["type"], "code": message.get("code")})


async def deny_http(scope, receive, send):
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"entry"})


async def deny_http_single(scope, receive, send):
    await send({"type": "websocket.http.response.start", "status": 418, "headers": []})
    await send({"type": "websocket.http.response.body", "body": b"short and stout"})


async def close_route(scope, receive, send):
    args = query(scope)
    await send({"type": "websocket.accept"})
    await send(
        {"type": "websocket.close", "code": int(args.get("code", 1000)), "reason": args.get("reason", "")}
    )
    await wait_disconnect(receive, scope)


async def record_close(scope, receive, send):
    await send({"type": "websocket.accept"})
    await wait_disconnect(receive, scope)


async def error_before_accept(scope, receive, send):
    raise RuntimeError("boom before accept")


async def error_after_accept(scope, receive, send):
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept")


async def return_before_accept(scope, receive, send):
    return


async def return_after_accept(scope, receive, send):
    await send({"type": "websocket.accept"})


async def slow_reader(scope, receive, send):
    # Accepts, then does not read for a while: the server must stop reading from the socket.
    await send({"type": "websocket.accept"})
    await asyncio.sleep(float(query(scope).get("sleep", "3")))
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        count += 1
    record(scope, {"received": count})


async def flood(scope, receive, send):
    # Sends as fast as send() lets it, to a client that does not read: send() must wait.
    # What it managed after `seconds` is recorded; the loop ends when the client goes away.
    await send({"type": "websocket.accept"})
    chunk = b"x" * (256 * 1024)
    progress = {"sent": 0}

    async def report():
        await asyncio.sleep(float(query(scope).get("seconds", "2")))
        record(scope, dict(progress))
        print(f"flood sent {progress['sent']}", flush=True)

    reporter = asyncio.get_running_loop().create_task(report())
    try:
        while progress["sent"] < 400:
            await send({"type": "websocket.send", "bytes": chunk})
            progress["sent"] += 1
    except OSError:
        pass
    await reporter


async def hold(scope, receive, send):
    # Accepts and waits for the disconnect, whatever causes it (ping timeout, shutdown...).
    await send({"type": "websocket.accept"})
    print(f"accepted {scope['path']}", flush=True)
    await wait_disconnect(receive, scope)


async def send_after_close(scope, receive, send):
    await send({"type": "websocket.accept"})
    await wait_disconnect(receive, scope)
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError as exc:
        record(scope, {"send_error": type(exc).__name__, "is_oserror": True})
    else:
        record(scope, {"send_error": None})


async def bad_accept_header(scope, receive, send):
    # Response splitting attempt: the server must refuse the header (and answer 500).
    await send({"type": "websocket.accept", "headers": [(b"x-bad", b"a\r\ninjected: 1")]})


async def bad_close_code(scope, receive, send):
    # 1005 may never be sent on the wire (RFC 6455 7.4.1): an app error after accept.
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1005})


async def events(scope, receive, send):
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(EVENTS)})
    await wait_disconnect(receive, scope)


ROUTES = {
    "/echo": echo,
    "/scope": scope_route,
    "/subprotocol": subprotocol,
    "/deny": deny,
    "/deny-http": deny_http,
    "/deny-http-single": deny_http_single,
    "/close": close_route,
    "/record-close": record_close,
    "/error-before-accept": error_before_accept,
    "/error-after-accept": error_after_accept,
    "/return-before-accept": return_before_accept,
    "/return-after-accept": return_after_accept,
    "/slow-reader": slow_reader,
    "/flood": flood,
    "/hold": hold,
    "/send-after-close": send_after_close,
    "/events": events,
    "/bad-accept-header": bad_accept_header,
    "/bad-close-code": bad_close_code,
}

if __name__ == "__main__":
    sys.exit("run with: python3 -m fastasgi tests.apps.ws_echo:app")
