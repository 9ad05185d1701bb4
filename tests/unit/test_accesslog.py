"""The access-log format compiler, called directly: each atom, escaping, and the errors a
bad ``--access-log-format`` gets."""

from __future__ import annotations

import pytest

try:
    from fastasgi._accesslog import compile_access_format
except ImportError:  # before the access log had a module of its own
    from fastasgi.logging import compile_access_format

SCOPE = {
    "type": "http",
    "client": ("1.2.3.4", 5678),
    "method": "GET",
    "path": "/a b",
    "raw_path": b"/a%20b",
    "query_string": b"q=1",
    "http_version": "1.1",
    "headers": [
        (b"user-agent", b"curl/8"),
        (b"x-a", b"1"),
        (b"x-a", b"2"),
        (b"authorization", b"Basic dXNlcjpwdw=="),
    ],  # user:pw
}


def line(fmt: str, scope=SCOPE, status: int = 200, nbytes: int = 5, duration: float = 1.5) -> str:
    return compile_access_format(fmt)(scope, status, nbytes, duration)


@pytest.mark.parametrize(
    "fmt,expected",
    [
        ("%(h)s", "1.2.3.4"),
        ("%(client_addr)s", "1.2.3.4:5678"),
        ("%(l)s %(u)s", "- user"),
        ("%(r)s", "GET /a%20b?q=1 HTTP/1.1"),
        ("%(request_line)s", "GET /a%20b?q=1 HTTP/1.1"),
        ("%(m)s %(U)s %(q)s %(H)s", "GET /a%20b q=1 HTTP/1.1"),
        ("%(s)s %(status_code)s", "200 200 OK"),
        ("%(b)s %(B)s", "5 5"),
        ("%(D)s %(M)s %(L)s %(T)s", "1500000 1500 1.500000 1"),
        ("%(a)s %(f)s", "curl/8 -"),
        ("%({X-A}i)s %({x-missing}i)s", "1, 2 -"),
        ("100%% %(s)s", "100% 200"),
        ('"%(r)s" {braces} \\', '"GET /a%20b?q=1 HTTP/1.1" {braces} \\'),
    ],
)
def test_atoms(fmt, expected):
    assert line(fmt) == expected


def test_no_body_and_no_client():
    scope = dict(SCOPE, client=None, headers=[])
    assert line("%(h)s|%(client_addr)s|%(b)s|%(B)s|%(u)s|%(a)s", scope, nbytes=0) == "-||-|0|-|-"


def test_unsafe_bytes_are_hex_escaped():
    # nginx's rule: anything but printable ASCII, and '"' and '\\', as \xHH
    scope = dict(SCOPE, raw_path=b'/x"\x1b\\\xff', query_string=b"a=\x00")
    assert line("%(r)s", scope) == "GET /x\\x22\\x1b\\x5c\\xff?a=\\x00 HTTP/1.1"
    scope = dict(SCOPE, headers=[(b"user-agent", b'evil"\r\nINJECTED')])
    assert line("%(a)s", scope) == "evil\\x22\\x0d\\x0aINJECTED"


@pytest.mark.parametrize(
    "fmt,says",
    [
        ("%(nope)s", "unknown atom %(nope)s"),
        ("50% done", "'%' at position 2"),
        ("%({bad name}i)s", "does not name a header"),
    ],
)
def test_bad_formats_say_what_is_wrong(fmt, says):
    with pytest.raises(ValueError) as info:
        compile_access_format(fmt)
    assert says in str(info.value)
