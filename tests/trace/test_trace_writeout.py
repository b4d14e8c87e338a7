"""``write_out`` (curl's ``-w``) checked against real curl on the same kind of request.

Variables whose values both sides know (status, sizes, addresses, headers) must come out
byte-identical to curl's; timings and the client port differ by nature, so for those the
shape of each value must match curl's (six-decimal seconds, plain integers).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

import trunkline
from trunkline.trace import Step, Tracer
from trunkline.trace.writeout import ResponseFacts, format_seconds, load_format, write_out

BODY = b"ok"
HEADERS = [("Content-Type", "text/plain"), ("X-A", "one"), ("X-A", "two"),
           ("Content-Length", str(len(BODY)))]
RESPONSE = (b"HTTP/1.1 200 OK\r\n"
            + b"".join(f"{k}: {v}\r\n".encode() for k, v in HEADERS) + b"\r\n" + BODY)


async def respond(stream: trunkline.Stream) -> None:
    """A fixed HTTP/1.1 response per request, keep-alive until the client closes."""
    while True:
        head = await stream.readuntil(b"\r\n\r\n")
        if not head.endswith(b"\r\n\r\n"):
            return
        await stream.send(RESPONSE)


@dataclass
class Site:
    url: str  # what curl is given
    connect_url: str  # what trunkline.connect is given
    curl_args: list[str]


@pytest.fixture
async def tcp_site() -> AsyncIterator[Site]:
    async with await trunkline.serve(respond, "tcp://127.0.0.1:0") as server:
        port = server.addresses[0].port  # type: ignore[union-attr]
        yield Site(f"http://127.0.0.1:{port}/", f"tcp://127.0.0.1:{port}", [])


@pytest.fixture
async def unix_site(short_tmp: os.PathLike[str]) -> AsyncIterator[Site]:
    path = f"{os.fspath(short_tmp)}/w.sock"
    async with await trunkline.serve(respond, f"unix://{path}"):
        yield Site("http://localhost/", f"unix://{path}", ["--unix-socket", path])


def curl_path() -> str:
    path = shutil.which("curl")
    assert path, "these tests compare with real curl: apt-get install curl"
    return path


async def run_curl(site: Site, fmt: str) -> tuple[str, str]:
    proc = await asyncio.create_subprocess_exec(
        curl_path(), "-s", "-o", "/dev/null", "--max-time", "10", *site.curl_args,
        "-w", fmt, site.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    return out.decode(), err.decode()


async def traced_get(site: Site) -> Tracer:
    """The same GET over a raw trunkline stream, traced."""
    tracer = Tracer()
    async with await trunkline.connect(site.connect_url, tracer=tracer) as stream:
        await stream.send(b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n")
        head = await stream.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert await stream.readexactly(len(BODY)) == BODY
    return tracer


def facts_for(site: Site, **extra: object) -> ResponseFacts:
    return ResponseFacts(http_code=200, size_download=len(BODY), size_upload=0, url=site.url,
                         method="GET", scheme="http", content_type="text/plain",
                         http_version="1.1", headers=HEADERS, **extra)  # type: ignore[arg-type]


EXACT = ("%{http_code}|%{HTTP_CODE}|%{response_code}|%{size_download}|%{remote_ip}|"
         "%{remote_port}|%{num_connects}|%{http_connect}|%{method}|%{scheme}|%{url}|"
         "%{url_effective}|%{content_type}|%{http_version}|%{num_headers}|%{exitcode}|"
         "%{errormsg}|%{redirect_url}|%{num_redirects}|%{time_redirect}|%{size_upload}|"
         "%{time_appconnect}|%%|\\t|\\x|\\\\|\\|%{bogus}|%x|%header{x-a}|%header{X-A}|"
         "%header{nope}|%{header_json}|%header{|%{time_total\\n")


async def test_exact_formatting_matches_curl(tcp_site: Site) -> None:
    curl_out, curl_err = await run_curl(tcp_site, EXACT)
    tracer = await traced_get(tcp_site)
    unknown: list[str] = []
    ours = write_out(EXACT, tracer.events, facts_for(tcp_site), on_unknown=unknown.append)
    assert ours == curl_out
    assert unknown == ["bogus"]
    assert "unknown --write-out variable: 'bogus'" in curl_err


TIME = r"\d+\.\d{6}"
SHAPES = {
    "time_namelookup": TIME, "time_connect": TIME, "time_appconnect": TIME,
    "time_pretransfer": TIME, "time_starttransfer": TIME, "time_total": TIME,
    "remote_ip": r"127\.0\.0\.1", "remote_port": r"[1-9]\d*", "local_ip": r"127\.0\.0\.1",
    "local_port": r"[1-9]\d*", "http_code": r"200", "size_download": r"2",
    "speed_download": r"\d+",
}


async def test_timing_and_address_shapes_match_curl(tcp_site: Site) -> None:
    fmt = "|".join(f"%{{{name}}}" for name in SHAPES) + "\\n"
    curl_out, _ = await run_curl(tcp_site, fmt)
    tracer = await traced_get(tcp_site)
    ours = write_out(fmt, tracer.events, facts_for(tcp_site))
    assert curl_out.endswith("\n") and ours.endswith("\n")
    for name, shape, curl_value, our_value in zip(SHAPES, SHAPES.values(),
                                                  curl_out[:-1].split("|"),
                                                  ours[:-1].split("|"), strict=True):
        assert re.fullmatch(shape, curl_value), (name, curl_value)
        assert re.fullmatch(shape, our_value), (name, our_value)
    values = dict(zip(SHAPES, ours[:-1].split("|"), strict=True))
    # cumulative like curl's: each later mark includes the earlier ones; no TLS here
    marks = [float(values[n]) for n in ("time_namelookup", "time_connect", "time_pretransfer",
                                        "time_starttransfer", "time_total")]
    assert marks == sorted(marks)
    assert values["time_appconnect"] == "0.000000"
    connect = next(e for e in tracer.events if e.step is Step.CONNECT)
    assert connect.detail["local"] == f"{values['local_ip']}:{values['local_port']}"


async def test_unix_socket_identity_matches_curl(unix_site: Site) -> None:
    fmt = "%{remote_ip}|%{remote_port}|%{local_ip}|%{local_port}|%{http_code}|%{num_connects}"
    curl_out, _ = await run_curl(unix_site, fmt)
    tracer = await traced_get(unix_site)
    # curl shows the URL's port for a Unix socket; the caller knows it, the events do not
    ours = write_out(fmt, tracer.events, facts_for(unix_site, remote_port=80))
    assert ours == curl_out


def test_value_formats() -> None:
    assert format_seconds(1_234_567) == "0.001234"  # truncated to the microsecond, like curl
    assert format_seconds(2_500_000_000) == "2.500000"
    assert format_seconds(None) == "0.000000"
    t = Tracer()
    t.record(Step.CONNECT, "client", 0, 1, 1_999_999, local="[::1]:5", peer="::1:8080")
    assert write_out("%{time_connect} %{http_code} %{remote_ip} %{remote_port} %{local_port}",
                     t.events) == "0.001999 000 ::1 8080 5"
    assert write_out("%{time_namelookup}|%{time_appconnect}|%{time_starttransfer}",
                     t.events) == "0.000000|0.000000|0.000000"


def test_syntax_edge_cases() -> None:
    assert write_out("100%", []) == "100%"
    assert write_out("a\\", []) == "a\\"
    assert write_out("\\r\\n\\t\\q", []) == "\r\n\t\\q"
    assert write_out("%{http_code", []) == "%{http_code"
    assert write_out("%header{x", []) == "%header{x"
    assert write_out("%{}", []) == ""
    assert write_out("%%{http_code}", []) == "%{http_code}"


def test_load_format(tmp_path: os.PathLike[str]) -> None:
    path = f"{os.fspath(tmp_path)}/fmt"
    with open(path, "w", encoding="utf-8") as f:
        f.write("%{http_code}\\n")
    assert load_format(f"@{path}") == "%{http_code}\\n"
    assert load_format("@-", io.StringIO("%{time_total}")) == "%{time_total}"
    assert load_format("plain %{url}") == "plain %{url}"
    with pytest.raises(ValueError, match="stdin"):
        load_format("@-")
