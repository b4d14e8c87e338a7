"""``static DIR`` against curl: no scheme-relative redirect (issue 10.5, ``GET //sub``),
single byte ranges (206/416, RFC 9110 section 14), ETag and conditional requests (304), and
the same ETag and range answers as Starlette's ``StaticFiles`` on the same files."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.staticfiles import StaticFiles

from tests.support.http_server_support import exchange, parse_head, running
from trunkline.apps.static import StaticApp

DATA = bytes(range(256)) * 40  # 10,240 bytes


async def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """status, response headers (lowercased names) and body of one curl call."""
    proc = await asyncio.create_subprocess_exec(
        "curl", "-sS", "--max-time", "10", "-D", "-", "-o", "/dev/stdout", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    head, _, body = out.partition(b"\r\n\r\n")
    while body.startswith(b"HTTP/1.1 "):  # -L: the head of the next response
        head, _, body = body.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, body


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "index.html").write_text("sub index")
    (root / "sub" / "deeper" / "index.html").write_text("deeper")
    (root / "a b").mkdir()
    (root / "a b" / "index.html").write_text("spaced")
    (root / "data.bin").write_bytes(DATA)
    (root / "empty.txt").write_bytes(b"")
    return root


@pytest.fixture
async def base(site: Path) -> AsyncIterator[str]:
    async with running(StaticApp(site), access_log=False) as server:
        yield "http://" + server.urls[0].split("://", 1)[1]


async def test_no_scheme_relative_redirect(site: Path) -> None:
    async with running(StaticApp(site), access_log=False) as server:
        for target, location in [(b"//sub", b"/sub/"), (b"///sub", b"/sub/"),
                                 (b"/sub//deeper", b"/sub/deeper/"), (b"/sub", b"/sub/"),
                                 (b"//sub?x=1", b"/sub/?x=1"), (b"/a%20b", b"/a%20b/")]:
            received, _ = await exchange(server.urls[0], b"GET " + target + b" HTTP/1.1\r\n"
                                         b"Host: t\r\nConnection: close\r\n\r\n")
            status, headers = parse_head(received.partition(b"\r\n\r\n")[0])
            assert status == 308, (target, received)
            assert headers["location"].encode() == location, (target, received)
            assert not headers["location"].startswith("//")


async def test_curl_follows_the_redirect_to_the_same_host(base: str) -> None:
    status, headers, body = await curl("-L", base + "//sub")
    assert (status, body) == (200, b"sub index")


async def test_single_byte_ranges(base: str) -> None:
    url = base + "/data.bin"
    status, headers, body = await curl("-r", "0-99", url)
    assert status == 206 and body == DATA[:100]
    assert headers["content-range"] == f"bytes 0-99/{len(DATA)}"
    assert headers["content-length"] == "100" and headers["accept-ranges"] == "bytes"
    status, headers, body = await curl("-r", "10000-", url)
    assert status == 206 and body == DATA[10000:]
    assert headers["content-range"] == f"bytes 10000-{len(DATA) - 1}/{len(DATA)}"
    status, headers, body = await curl("-r", "-50", url)
    assert status == 206 and body == DATA[-50:]
    status, headers, body = await curl("-r", "100-99999", url)  # clamped to the end
    assert status == 206 and body == DATA[100:]
    status, headers, body = await curl("-r", "20000-", url)
    assert status == 416 and headers["content-range"] == f"bytes */{len(DATA)}"
    status, headers, _ = await curl("-r", "0-0", base + "/empty.txt")
    assert status == 416 and headers["content-range"] == "bytes */0"
    # ignored (RFC 9110 14.2): several ranges, another unit, malformed: the whole file
    for value in ("bytes=0-1,5-6", "lines=0-1", "bytes=5-2", "bytes=x-", "bytes=-"):
        status, headers, body = await curl("-H", f"Range: {value}", url)
        assert status == 200 and body == DATA and "content-range" not in headers, value
    status, headers, body = await curl("-I", "-r", "0-9", url)  # HEAD: the same headers
    assert status == 206 and headers["content-length"] == "10"


async def test_etag_and_conditional_requests(base: str) -> None:
    url = base + "/data.bin"
    status, headers, body = await curl(url)
    etag, modified = headers["etag"], headers["last-modified"]
    assert status == 200 and etag.startswith('"') and etag.endswith('"')
    for condition in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        status, got, body = await curl("-H", f"If-None-Match: {condition}", url)
        assert (status, body, got["etag"]) == (304, b"", etag), condition
        assert "content-length" not in got
    status, _, body = await curl("-H", 'If-None-Match: "other"', url)
    assert (status, body) == (200, DATA)
    status, _, body = await curl("-H", f"If-Modified-Since: {modified}", url)
    assert (status, body) == (304, b"")
    status, _, body = await curl("-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT", url)
    assert (status, body) == (200, DATA)
    # If-None-Match decides when both are there (RFC 9110 13.1.3)
    status, _, _ = await curl("-H", 'If-None-Match: "other"',
                              "-H", f"If-Modified-Since: {modified}", url)
    assert status == 200
    # If-Range: the range only while the representation is the same (a strong match)
    status, _, body = await curl("-r", "0-9", "-H", f"If-Range: {etag}", url)
    assert (status, body) == (206, DATA[:10])
    status, _, body = await curl("-r", "0-9", "-H", f"If-Range: {modified}", url)
    assert (status, body) == (206, DATA[:10])
    status, _, body = await curl("-r", "0-9", "-H", 'If-Range: "changed"', url)
    assert (status, body) == (200, DATA)


async def test_a_changed_file_gets_a_new_etag(site: Path, base: str) -> None:
    url = base + "/data.bin"
    _, headers, _ = await curl(url)
    os.utime(site / "data.bin", (1_000_000_000, 1_000_000_000))
    status, changed, body = await curl("-H", f"If-None-Match: {headers['etag']}", url)
    assert status == 200 and body == DATA and changed["etag"] != headers["etag"]


async def test_matches_starlette_static_files(site: Path, base: str) -> None:
    """The same files through Starlette's StaticFiles: the same ETag, and the same answers to
    the single-range and conditional requests."""
    async with running(StaticFiles(directory=site), access_log=False,
                       lifespan="off") as theirs:
        other = "http://" + theirs.urls[0].split("://", 1)[1]
        ours_status, ours, ours_body = await curl(base + "/data.bin")
        their_status, their, their_body = await curl(other + "/data.bin")
        assert ours["etag"] == their["etag"] and ours_body == their_body
        for args in (["-r", "0-99"], ["-r", "-7"], ["-r", "9000-"], ["-r", "20000-"],
                     ["-H", f"If-None-Match: {ours['etag']}"],
                     ["-H", f"If-Modified-Since: {ours['last-modified']}"],
                     ["-r", "5-9", "-H", f"If-Range: {ours['etag']}"]):
            a = await curl(*args, base + "/data.bin")
            b = await curl(*args, other + "/data.bin")
            assert a[0] == b[0], args
            assert a[0] == 416 or a[2] == b[2], args  # a 416's text is ours to word
            assert a[1].get("content-range") == b[1].get("content-range"), args
