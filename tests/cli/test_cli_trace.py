"""``trunkline call --trace/-w/--dns/--server-trace`` and ``trunkline serve --trace`` as
subprocesses against real servers: every trace format, the body alone on stdout, ``-w``
against real curl, DNS through the test DNS server, both sides merged by trace id, and the
Mermaid output of a real call rendered by headless Chromium.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import shutil
import ssl
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme

from tests.support.causal import assert_causal_order
from tests.trace.test_trace_browser import dump_dom, mermaid_text
from tests.trace.test_trace_render import arrows
from trunkline.server import AppServer, ServerConfig, load_app
from trunkline.trace import JsonLinesSink, Tracer
from trunkline.trace.html import mermaid_js

BODY = b"Hello, world!\n"
SUPPORT = Path(__file__).resolve().parent.parent / "support"


async def trunkline(*args: str, env: dict[str, str] | None = None,
                    stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """Run ``trunkline ARGS`` (the server under test runs in this test's event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


@dataclass
class Site:
    tcp: str  # http://127.0.0.1:PORT
    unix_path: str
    unix: str  # http+unix://...
    tls: str  # https://localhost:PORT
    cafile: str
    tracer: Tracer
    trace_file: str  # the server's JSON lines, as `trunkline serve --trace-file` writes them


@pytest.fixture
async def site(short_tmp: Path, tmp_path: Path) -> AsyncIterator[Site]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    cafile = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(cafile)
    trace_file = str(tmp_path / "server.jsonl")
    sink = JsonLinesSink(trace_file)
    tracer = Tracer(sink)
    sock = f"{short_tmp}/s.sock"
    server = AppServer(load_app("hello"), "tcp://127.0.0.1:0", f"unix://{sock}",
                       "tls://127.0.0.1:0", tracer=tracer,
                       config=ServerConfig(ssl_context=server_ctx, access_log=False))
    try:
        async with server:
            port = server.urls[0].rsplit(":", 1)[1]
            tls_port = server.urls[2].rsplit(":", 1)[1]
            yield Site(f"http://127.0.0.1:{port}", sock,
                       f"http+unix://{quote(sock, safe='')}", f"https://localhost:{tls_port}",
                       cafile, tracer, trace_file)
    finally:
        sink.close()


# --------------------------------------------------------------------------- formats


async def test_text_trace_on_stderr_body_on_stdout(site: Site) -> None:
    code, out, err = await trunkline("call", site.tcp + "/", "--trace")
    assert code == 0 and out == BODY
    assert re.match(r"tcp 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+\n", err), err
    for column in ("TCP Connection", "Server Processing", "Content Transfer"):
        assert column in err
    assert re.search(r"connect:\d+\.\d\d ms", err) and re.search(r"total:\d+\.\d\d ms", err)
    assert "DNS Lookup" not in err and "TLS Handshake" not in err
    # a bare --trace before the URL: the URL is not taken as its format
    code, out, err = await trunkline("call", "--trace", "GET", site.tcp + "/")
    assert code == 0 and out == BODY and "TCP Connection" in err


async def test_text_trace_over_tls_and_unix(site: Site) -> None:
    code, out, err = await trunkline("call", site.tls + "/", "--cacert", site.cafile,
                                     "--trace")
    assert code == 0 and out == BODY
    assert "TLS Handshake" in err and "appconnect:" in err
    assert "DNS Lookup" in err  # localhost through the system resolver
    assert "(localhost via system resolver)" in err
    code, out, err = await trunkline("call", site.unix + "/", "--trace")
    assert code == 0 and out == BODY
    assert f"-> {site.unix_path}\n" in err and "Unix Connect" in err


async def test_json_trace(site: Site) -> None:
    code, out, err = await trunkline("call", site.tcp + "/", "--trace=json")
    assert code == 0 and out == BODY
    doc = json.loads(err)
    steps = [e["step"] for e in doc["events"]]
    assert steps == ["socket", "connect", "request_headers", "first_byte", "response_done",
                     "release", "close"]
    assert re.fullmatch(r"[0-9a-f]{32}", doc["trace_id"])
    assert doc["events"][2]["detail"]["trace_id"] == doc["trace_id"]
    summary = doc["summary"]
    assert summary["kind"] == "tcp" and summary["remote"] == site.tcp.removeprefix("http://")
    assert [p["name"] for p in summary["phases"]] == ["TCP Connection", "Pre-transfer",
                                                      "Server Processing", "Content Transfer"]
    # the columns sum to the total; the figures only grow
    assert sum(p["duration_ns"] for p in summary["phases"]) == round(
        summary["time_total"] * 1e9)
    assert 0 < summary["time_connect"] <= summary["time_pretransfer"] <= \
        summary["time_starttransfer"] <= summary["time_total"]
    # the byte counts are what the events say (issue 13 point 6: they were 0)
    request, done = doc["events"][2], doc["events"][4]
    assert summary["bytes_sent"] == request["detail"]["bytes"] > 0
    assert summary["bytes_received"] == done["detail"]["head_bytes"] + len(BODY)
    # tracing our side sends nothing extra: the server saw no trace id (issue 13 point 5)
    ids = {e.detail.get("trace_id") for e in site.tracer.events}
    assert doc["trace_id"] not in ids
    # --trace-headers sends it, so the server records the same id
    code, out, err = await trunkline("call", site.tcp + "/", "--trace=json", "--trace-headers")
    doc = json.loads(err)
    ids = {e.detail.get("trace_id") for e in site.tracer.events}
    assert doc["trace_id"] in ids


async def test_mermaid_trace(site: Site) -> None:
    code, out, err = await trunkline("call", site.tcp + "/", "--trace=mermaid")
    assert code == 0 and out == BODY
    lines = err.splitlines()
    assert lines[0] == "sequenceDiagram" and "    autonumber" in lines
    participants = [line.split(" as ")[1] for line in lines if "participant" in line]
    assert participants[0].startswith("Application 127.0.0.1:")
    assert participants[1:] == ["OS/Networking", f"Server {site.tcp.removeprefix('http://')}"]
    labels = [label for _, _, label in arrows(err)]
    assert len(labels) == 7  # one arrow per client step
    assert all(re.search(r"\d+\.\d\d ms$", label) for label in labels)
    assert labels[1].startswith("TCP handshake (SYN/SYN-ACK/ACK)")


async def test_html_trace_to_a_named_file_and_a_new_one(site: Site, tmp_path: Path) -> None:
    page = tmp_path / "t.html"
    code, out, err = await trunkline("call", site.tcp + "/", f"--trace=html:{page}")
    assert code == 0 and out == BODY
    assert f"html trace written to {page}" in err
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and '<pre class="mermaid">' in text
    assert "trunkline call GET " in text and "mermaid.initialize" in text
    # no path given: a new file under the runtime dir, named on stderr
    runtime = tmp_path / "run"
    runtime.mkdir()
    code, out, err = await trunkline("call", site.tcp + "/", "--trace=html",
                                     env={"XDG_RUNTIME_DIR": str(runtime)})
    assert code == 0 and out == BODY
    match = re.search(r"html trace written to (\S+\.html)$", err.strip())
    assert match, err
    assert Path(match.group(1)).parent == runtime / "trunkline"
    assert Path(match.group(1)).read_text().startswith("<!DOCTYPE html>")


async def test_trace_file_and_usage_errors(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "trace.txt"
    code, out, err = await trunkline("call", site.tcp + "/", "--trace-file", str(path))
    assert code == 0 and out == BODY
    assert "TCP Connection" in path.read_text() and "TCP Connection" not in err
    code, _, err = await trunkline("call", site.tcp + "/", "--trace=jsno")
    assert code == 2 and "'jsno' is not a trace format" in err
    code, _, err = await trunkline("call", site.tcp + "/", "--trace=html:")
    assert code == 2 and "needs a path" in err
    code, _, err = await trunkline("call", site.tcp + "/", "--dns", "dns.example:53")
    assert code == 2 and "not an IP address" in err
    code, _, err = await trunkline("call", site.tcp + "/", "--trace=json", "--trace-file",
                                   str(tmp_path / "no" / "such" / "dir.json"))
    assert code == 23 and "cannot write the trace" in err


async def test_failed_call_still_traced_and_written_out() -> None:
    from tests.support.cli_helpers import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    code, out, err = await trunkline("call", url, "--trace", "-w",
                                     "%{http_code} %{exitcode} %{num_connects}\\n")
    assert code == 7
    assert out == b"000 7 0\n"  # curl prints the same for a refused connection
    assert "could not connect" in err.lower() or "refused" in err.lower()


# --------------------------------------------------------------------------- -w vs curl


def curl_path() -> str:
    path = shutil.which("curl")
    assert path, "these tests compare with real curl: apt-get install curl"
    return path


async def curl(*args: str) -> tuple[int, bytes]:
    proc = await asyncio.create_subprocess_exec(
        curl_path(), "-s", "--max-time", "10", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out


TIME = r"\d+\.\d{6}"
SHAPES = {
    "time_namelookup": TIME, "time_connect": TIME, "time_appconnect": TIME,
    "time_pretransfer": TIME, "time_starttransfer": TIME, "time_total": TIME,
    "local_port": r"[1-9]\d*", "speed_download": r"\d+", "size_request": r"[1-9]\d*",
}
EXACT = ["http_code", "response_code", "size_download", "size_header", "remote_ip",
         "remote_port", "local_ip", "num_connects", "num_headers", "content_type",
         "http_version", "method", "scheme", "url", "url_effective", "exitcode",
         "size_upload", "redirect_url", "num_redirects"]


async def test_write_out_matches_curl_over_tcp(site: Site) -> None:
    names = list(SHAPES) + EXACT
    fmt = "|".join(f"%{{{n}}}" for n in names) + "|%header{content-length}\\n"
    url = site.tcp + "/"
    curl_code, curl_out = await curl("-o", "/dev/null", "-w", fmt, url)
    code, out, err = await trunkline("call", url, "-o", "/dev/null", "-w", fmt)
    assert curl_code == 0 and code == 0, err
    theirs, ours = curl_out.decode()[:-1].split("|"), out.decode()[:-1].split("|")
    assert curl_out.endswith(b"\n") and out.endswith(b"\n")
    for name, their, our in zip([*names, "header"], theirs, ours, strict=True):
        if name in SHAPES:
            assert re.fullmatch(SHAPES[name], their), (name, their)
            assert re.fullmatch(SHAPES[name], our), (name, our)
        else:
            assert our == their, (name, our, their)
    values = dict(zip(names, ours, strict=False))
    assert values["time_appconnect"] == "0.000000" and values["http_code"] == "200"


async def test_write_out_figures_follow_each_other_as_curls_do(site: Site) -> None:
    """Both tools' time figures only grow; ours adds time_requestsent between pretransfer and
    starttransfer (so the server's time sits after pretransfer, as in curl), and the upload
    size of a -d body is curl's."""
    names = ["time_connect", "time_pretransfer", "time_starttransfer", "time_total"]
    fmt = " ".join(f"%{{{n}}}" for n in [*names, "size_upload", "time_requestsent"]) + "\\n"
    url = site.tcp + "/"
    _, curl_out = await curl("-o", "/dev/null", "-d", "a=1", "-d", "b=22", "-w", fmt, url)
    code, out, err = await trunkline("call", url, "-o", "/dev/null", "-d", "a=1", "-d", "b=22",
                                     "-w", fmt)
    assert code == 0, err
    theirs, ours = curl_out.decode().split(), out.decode().split()
    for values in (theirs, ours):
        times = [float(v) for v in values[:4]]
        assert times == sorted(times) and times[0] > 0, values
    assert ours[4] == theirs[4] == "8"  # a=1&b=22
    assert float(ours[1]) <= float(ours[5]) <= float(ours[2])  # pretransfer, sent, first byte


async def test_write_out_matches_curl_over_unix_and_tls(site: Site, tmp_path: Path) -> None:
    fmt = ("%{http_code} %{remote_ip} %{remote_port} %{local_ip} %{local_port} "
           "%{num_connects} %{size_download} %{scheme}\\n")
    fmt_file = tmp_path / "fmt.txt"
    fmt_file.write_text(fmt)  # -w @file, as curl reads it
    _, curl_out = await curl("-o", "/dev/null", "--unix-socket", site.unix_path, "-w",
                             f"@{fmt_file}", "http://localhost/")
    code, out, _ = await trunkline("call", "http://localhost/", "--unix-socket",
                                   site.unix_path, "-o", "/dev/null", "-w", f"@{fmt_file}")
    assert code == 0 and out == curl_out
    assert out.decode().startswith(f"200 {site.unix_path} 80 ")

    fmt = "%{http_code} %{scheme} %{time_appconnect} %{remote_port}\\n"
    _, curl_out = await curl("-o", "/dev/null", "--cacert", site.cafile, "-w", fmt,
                             site.tls + "/")
    code, out, _ = await trunkline("call", site.tls + "/", "--cacert", site.cafile, "-o",
                                   "/dev/null", "-w", fmt)
    theirs, ours = curl_out.decode().split(), out.decode().split()
    assert code == 0 and ours[:2] == theirs[:2] == ["200", "HTTPS"]
    assert re.fullmatch(TIME, ours[2]) and float(ours[2]) > 0 and float(theirs[2]) > 0
    assert ours[3] == theirs[3]


# --------------------------------------------------------------------------- DNS


@pytest.fixture
async def dns_process() -> AsyncIterator[str]:
    """tests/support/dnsserver.py as a subprocess answering for api.test; yields 127.0.0.1:PORT."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SUPPORT / "dnsserver.py"), "--name", "api.test=127.0.0.1",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        port = int(line.split()[-1])
        yield f"127.0.0.1:{port}"
    finally:
        proc.stdin.close()  # it serves until stdin closes
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_dns_server_lookup_is_its_own_step(site: Site, dns_process: str) -> None:
    port = site.tcp.rsplit(":", 1)[1]
    url = f"http://api.test:{port}/"
    code, out, err = await trunkline("call", url, "--dns", dns_process, "--trace")
    assert code == 0 and out == BODY
    assert f"(api.test via udp {dns_process})" in err
    assert "DNS Lookup" in err and "namelookup:" in err
    code, out, err = await trunkline("call", url, "--dns", dns_process, "--trace=mermaid",
                                     "-o", "/dev/null")
    assert code == 0 and out == b""
    assert f"participant DNS as DNS udp {dns_process}" in err
    assert "App->>DNS: DNS query A/AAAA api.test -> 127.0.0.1" in err
    code, out, _ = await trunkline("call", url, "--dns", dns_process, "-o", "/dev/null", "-w",
                                   "%{time_namelookup} %{remote_ip}")
    lookup, ip = out.decode().split()
    assert float(lookup) > 0 and ip == "127.0.0.1"
    code, _, err = await trunkline("call", f"http://nope.test:{port}/", "--dns", dns_process,
                                   "--trace")
    assert code == 6 and "NXDOMAIN" in err


# --------------------------------------------------------------------------- both sides


async def test_server_trace_is_merged_by_trace_id(site: Site) -> None:
    await trunkline("call", site.tcp + "/")  # another call in the same server file
    code, out, err = await trunkline("call", site.unix + "/", "--trace=json",
                                     "--server-trace", site.trace_file)
    assert code == 0 and out == BODY
    doc = json.loads(err)
    client = [e for e in doc["events"] if e["side"] == "client"]
    server = [e for e in doc["events"] if e["side"] == "server"]
    assert [e["step"] for e in server] == ["accept", "request_headers", "app_call",
                                           "response_start", "response_done", "close"]
    assert len({e["conn"] for e in server}) == 1  # only this call's connection
    assert server[0]["detail"]["transport"] == "unix"
    ids = {e["detail"]["trace_id"] for e in server if "trace_id" in e.get("detail", {})}
    assert ids == {doc["trace_id"]}
    assert len(client) == 7
    assert_causal_order(doc["events"])

    code, out, err = await trunkline("call", site.tcp + "/", "--trace", "--server-trace",
                                     site.trace_file)
    assert code == 0 and "server side (trace id " in err
    assert re.search(r"server conn \d+ request_headers", err)


def mermaid_page(diagram: str) -> str:
    """A page drawing a Mermaid source with the vendored library (as trace.html does)."""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body>
<pre class="mermaid">
{html.escape(diagram)}</pre>
<script>
{mermaid_js()}
</script>
<script>
mermaid.initialize({{ startOnLoad: false, securityLevel: "strict",
                     sequence: {{ showSequenceNumbers: true }} }});
mermaid.run({{ querySelector: "pre.mermaid" }})
  .then(() => document.body.setAttribute("data-rendered", "ok"))
  .catch((err) => document.body.setAttribute("data-rendered", "error"));
</script>
</body></html>
"""


@pytest.mark.timeout(150)
async def test_call_mermaid_renders_in_chromium(site: Site, dns_process: str,
                                                tmp_path: Path) -> None:
    port = site.tcp.rsplit(":", 1)[1]
    code, out, diagram = await trunkline(
        "call", f"http://api.test:{port}/", "--dns", dns_process, "--trace=mermaid",
        "--server-trace", site.trace_file)
    assert code == 0 and out == BODY
    expected = [mermaid_text(label) for _, _, label in arrows(diagram)]
    # every step of both sides: 8 client steps (DNS included) and the server's 6
    assert len(expected) == 14
    page = tmp_path / "call.html"
    page.write_text(mermaid_page(diagram), encoding="utf-8")
    dom = await dump_dom(str(page))
    assert 'data-rendered="ok"' in dom, "mermaid did not finish rendering the diagram"
    match = re.search(r'<svg[^>]*aria-roledescription="sequence".*?</svg>', dom, re.DOTALL)
    assert match, "no sequence-diagram SVG in the rendered page"
    svg = match.group(0)
    assert svg.count('data-et="message"') == len(expected)
    shown = [html.unescape(t) for t in re.findall(
        r'<text[^>]*class="messageText"[^>]*>([^<]*)</text>', svg)]
    assert shown == expected
    numbers = re.findall(r'<text[^>]*class="sequenceNumber"[^>]*>(\d+)</text>', svg)
    assert numbers == [str(n) for n in range(1, len(expected) + 1)]
    actors = set(re.findall(r'<tspan[^>]*>([^<]*)</tspan>', svg))
    assert {"OS/Networking", f"DNS udp {dns_process}"} <= actors



# --------------------------------------------------------------------------- the tour

#: Every Mermaid arrow ends with its step's duration, as a duration.
DURATION_LABEL = re.compile(r" \+\d+\.\d\d ms( later)?$")


@pytest.mark.timeout(150)
async def test_tour_trace_leg_writes_diagrams_and_a_page(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    code, out, err = await trunkline("tour", "--only", "trace", "--trace-dir", str(traces))
    text = out.decode()
    assert code == 0, text + err
    # one timeline per transport in the output, and the folder named at the end
    for column in ("TCP Connection", "Unix Connect", "FIFO Rendezvous", "Server Processing"):
        assert column in text
    assert text.rstrip().splitlines()[-1] == (
        f"traces: Mermaid diagrams and an HTML page in {traces}")
    names = sorted(p.name for p in traces.iterdir())
    assert names == ["abstract.mmd", "fifo.mmd", "tcp.mmd", "trace.html", "unix.mmd"]
    for name in ("tcp", "unix", "abstract", "fifo"):
        diagram = (traces / f"{name}.mmd").read_text()
        labels = [label for _, _, label in arrows(diagram)]
        # both sides: the client's connect and first byte, the server's accept and app call
        assert any(label.startswith("server: accepted") for label in labels), name
        assert any(label.startswith("server: app called") for label in labels), name
        assert any(label.startswith("first response byte") for label in labels), name
        assert all(DURATION_LABEL.search(label) for label in labels), (name, labels)
    # the TCP request tells the whole story, in causal order: the name looked up, the socket,
    # the handshake, the request, the server parsing it and calling the app, the 200 back,
    # the close (FIN); "server: accepted" may come anywhere after the handshake
    labels = [label for _, _, label in arrows((traces / "tcp.mmd").read_text())]
    story = [re.sub(r" \+\d+\.\d\d ms( later)?$", "", label) for label in labels
             if not label.startswith("server: accepted")]
    assert story == [
        "DNS lookup localhost (system resolver) -> 127.0.0.1", "socket created (tcp, ipv4)",
        "TCP handshake (SYN/SYN-ACK/ACK)", "request headers sent",
        "server: request head parsed", "server: app called, returned",
        "server: response started", "server: response complete (200)", "first response byte",
        "response complete (200)", "connection returned to the pool",
        "close (FIN, by client)", "server: close (FIN, by client)"], labels
    assert labels.index(next(x for x in labels if x.startswith("server: accepted"))) > 2
    dom = await dump_dom(str(traces / "trace.html"))
    assert 'data-rendered="ok"' in dom
    assert dom.count('aria-roledescription="sequence"') == 4


# --------------------------------------------------------------------------- serve --trace


def test_serve_echo_trace_text_json_and_file(short_tmp: Path, tmp_path: Path) -> None:
    from tests.support.cli_helpers import Service, run

    trace_file = tmp_path / "echo.jsonl"
    sock = short_tmp / "e.sock"
    with Service(["serve", "echo", "--on", f"unix://{sock}", "--trace", "--trace-file",
                  str(trace_file)]) as server:
        [url] = server.wait_ready()
        done = run(["connect", url], input=b"ping")
        assert done.returncode == 0 and done.stdout == b"ping"
        for step in ("accept", "receive", "send", "close"):
            server.wait_for_line(rf"^trace server conn 1 {step} \d+\.\d\d ms")
        assert server.stop() == 0
    lines = [json.loads(line) for line in trace_file.read_text().splitlines()]
    assert [d["step"] for d in lines] == ["accept", "receive", "send", "close"]
    assert lines[1]["detail"]["bytes"] == 4

    with Service(["serve", "echo", "--on", f"unix://{sock}", "--trace=json"]) as server:
        [url] = server.wait_ready()
        assert run(["connect", url], input=b"x").stdout == b"x"
        line = server.wait_for_line(r'^\{"step":"close"').string
        assert json.loads(line)["side"] == "server"
        assert server.stop() == 0

    done = run(["serve", "echo", "--on", f"unix://{sock}", "--trace=mermaid"])
    assert done.returncode == 2 and b"--trace" in done.stderr


async def serve_process(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    """``trunkline serve ARGS`` in this event loop; its URLs from the readiness lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "trunkline", "serve", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    urls = []
    wanted = sum(1 for a in args if a == "--on")
    while len(urls) < wanted:
        line = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        assert line, "trunkline serve exited before it was ready"
        match = re.match(r"^listening on (\S+)", line)
        if match:
            urls.append(match.group(1))
    return proc, urls


async def stop(proc: asyncio.subprocess.Process) -> str:
    """SIGTERM, then the rest of its stderr."""
    assert proc.stderr is not None
    proc.terminate()
    rest = await asyncio.wait_for(proc.stderr.read(), 20)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    return rest.decode()


async def test_serve_http_trace_file_merged_into_call(short_tmp: Path, tmp_path: Path) -> None:
    trace_file = tmp_path / "server.jsonl"
    proc, urls = await serve_process("hello", "--on", "tcp://127.0.0.1:0", "--on",
                                     f"fifo://{short_tmp}/h.fifo", "--trace", "--trace-file",
                                     str(trace_file), "-q")
    try:
        tcp = urls[0].replace("tcp://", "http://")
        fifo = f"http+fifo://{quote(f'{short_tmp}/h.fifo', safe='')}"
        code, out, err = await trunkline("call", tcp + "/", "--trace=json", "--server-trace",
                                         str(trace_file))
        assert code == 0 and out == BODY
        doc = json.loads(err)
        server = [e for e in doc["events"] if e["side"] == "server"]
        assert [e["step"] for e in server if e["step"] != "app_call"] == [
            "accept", "request_headers", "response_start", "response_done", "close"]
        assert {e["detail"]["trace_id"] for e in server
                if e["step"] not in ("accept", "close")} == {doc["trace_id"]}
        connect = next(e for e in doc["events"] if e["step"] == "connect")
        assert server[0]["detail"]["peer"] == connect["detail"]["local"]
        assert_causal_order(doc["events"])

        code, out, diagram = await trunkline("call", fifo + "/", "--trace=mermaid",
                                             "--server-trace", str(trace_file))
        assert code == 0 and out == BODY
        labels = [label for _, _, label in arrows(diagram)]
        # causal order, whichever process's loop recorded first: the client's rendezvous,
        # then the server's accept; its answer after the request went out
        assert labels[1].startswith("FIFO rendezvous")
        assert labels.index(next(x for x in labels if x.startswith("server: accepted"))) > 1
        assert labels.index(next(x for x in labels if x.startswith("request headers sent"))) \
            < labels.index(next(x for x in labels if x.startswith("server: response started")))
        assert any(label.startswith("server: request head parsed") for label in labels)
        assert len([label for label in labels if label.startswith("server: ")]) == 6
    finally:
        text = await stop(proc)
    # the text trace on stderr: the same steps, each with the client's trace id
    ids = set(re.findall(r"^trace server conn \d+ request_headers .* trace_id=([0-9a-f]{32})",
                         text, re.MULTILINE))
    assert doc["trace_id"] in ids and len(ids) == 2


async def test_tour_default_trace_dir_keeps_the_newest(tmp_path: Path) -> None:
    base = tmp_path / "trunkline"
    base.mkdir()
    for i in range(6):  # older runs' folders
        old = base / f"tour-2020010{i}-000000-x"
        old.mkdir()
        os.utime(old, (1_600_000_000 + i, 1_600_000_000 + i))
    code, out, err = await trunkline("tour", "--only", "trace",
                                     env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert code == 0, err
    last = out.decode().rstrip().splitlines()[-1]
    match = re.fullmatch(r"traces: Mermaid diagrams and an HTML page in (\S+)", last)
    assert match, last
    written = Path(match.group(1))
    assert written.parent == base and (written / "tcp.mmd").is_file()
    kept = sorted(p.name for p in base.iterdir())
    assert len(kept) == 5 and written.name in kept
    assert kept[:4] == [f"tour-2020010{i}-000000-x" for i in (2, 3, 4, 5)]
