"""DnsResolver against a real DNS server on 127.0.0.1 (tests/support/dnsserver.py), and that server
itself, in-process and as a subprocess."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import trunkline
from trunkline.errors import ResolveError, TrunklineTimeoutError
from trunkline.resolve import DnsResolver, parse_dns_server
from trunkline.trace import Step, Tracer

BOTH_LOOPS = pytest.mark.asyncio(loop_factories=["asyncio", "uvloop"])

if TYPE_CHECKING:
    from tests.support.dnsserver import DnsServer

# the dns_server fixture; imported by pytest (not above), so its asserts are rewritten
pytest_plugins = ["tests.support.dnsserver"]


@BOTH_LOOPS
async def test_resolves_a_and_aaaa(dns_server: DnsServer) -> None:
    resolver = DnsResolver(dns_server.address)
    assert await resolver("api.test", 8000) == [(socket.AF_INET, ("127.0.0.1", 8000))]
    assert await resolver("v6.test", 80) == [(socket.AF_INET6, ("::1", 80))]
    assert await resolver("both.test.", 1) == [(socket.AF_INET, ("127.0.0.1", 1)),
                                               (socket.AF_INET6, ("::1", 1))]
    assert ("api.test", "A") in dns_server.queries
    assert ("api.test", "AAAA") in dns_server.queries


async def test_records_its_own_resolve_event(dns_server: DnsServer) -> None:
    tracer = Tracer()
    resolver = DnsResolver(dns_server.address, tracer=tracer)
    await resolver("both.test", 80, conn=7)
    [event] = tracer.events
    assert event.step is Step.RESOLVE and event.side == "client" and event.conn == 7
    assert event.detail["server"] == f"udp 127.0.0.1:{dns_server.port}"
    assert event.detail["host"] == "both.test"
    assert event.detail["answers"] == {"A": ["127.0.0.1"], "AAAA": ["::1"]}
    assert event.detail["addresses"] == ["127.0.0.1", "::1"]
    assert event.duration_ns > 0


@BOTH_LOOPS
async def test_nxdomain_is_a_resolve_error_naming_the_server(dns_server: DnsServer) -> None:
    tracer = Tracer()
    with pytest.raises(ResolveError, match=r"'nope\.test' does not exist \(NXDOMAIN from DNS "
                       rf"server udp 127\.0\.0\.1:{dns_server.port}\)"):
        await DnsResolver(dns_server.address)("nope.test", 80, tracer=tracer)
    [event] = tracer.events
    assert "NXDOMAIN" in event.detail["error"]


async def test_silent_server_times_out(dns_server: DnsServer) -> None:
    resolver = DnsResolver(dns_server.address, timeout=0.3)
    with pytest.raises(TrunklineTimeoutError, match="did not answer for 'slow.test' within 0.3 s"):
        await resolver("slow.test", 80)


@BOTH_LOOPS
async def test_no_server_there_fails_fast_as_resolve_error() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the kernel answers "port unreachable"
    # a generous timeout: failing before it shows the refusal was seen, not waited out
    resolver = DnsResolver(f"127.0.0.1:{port}", timeout=30)
    with pytest.raises(ResolveError, match="connection refused; is a DNS server running"):
        await asyncio.wait_for(resolver("api.test", 80), 10)


def test_parse_dns_server() -> None:
    assert parse_dns_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_dns_server("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_dns_server("udp://127.0.0.1:53") == ("127.0.0.1", 53)
    assert parse_dns_server("[::1]:5353") == ("::1", 5353)
    assert parse_dns_server("::1") == ("::1", 53)
    with pytest.raises(ResolveError, match="not an IP address"):
        parse_dns_server("dns.example:53")
    with pytest.raises(ResolveError, match="not 1-65535"):
        parse_dns_server("127.0.0.1:99999")


@BOTH_LOOPS
async def test_connect_through_the_dns_server_records_one_resolve(dns_server: DnsServer) -> None:
    async def echo(stream: trunkline.Stream) -> None:
        await stream.send(await stream.read())

    async with await trunkline.serve(echo, "tcp://127.0.0.1:0") as server:
        port = server.addresses[0].port  # type: ignore[union-attr]
        tracer = Tracer()
        stream = await trunkline.connect(f"tcp://api.test:{port}", tracer=tracer,
                                         resolver=DnsResolver(dns_server.address))
        async with stream:
            await stream.send(b"ping")
            assert await stream.read() == b"ping"
    resolves = [e for e in tracer.events if e.step is Step.RESOLVE]
    assert len(resolves) == 1
    assert resolves[0].detail["server"] == f"udp 127.0.0.1:{dns_server.port}"


async def test_connect_to_unknown_name_raises_resolve_error(dns_server: DnsServer) -> None:
    with pytest.raises(ResolveError, match="NXDOMAIN"):
        await trunkline.connect("tcp://nope.test:80", resolver=DnsResolver(dns_server.address))


async def test_server_answers_nxdomain_and_nodata() -> None:
    import dns.asyncquery
    import dns.message
    import dns.rcode

    from tests.support.dnsserver import start_dns_server

    server = await start_dns_server({"v4only.test": ["127.0.0.2"]})
    try:
        nodata = await dns.asyncquery.udp(dns.message.make_query("v4only.test", "AAAA"),
                                          "127.0.0.1", port=server.port, timeout=5)
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        missing = await dns.asyncquery.udp(dns.message.make_query("other.test", "A"),
                                           "127.0.0.1", port=server.port, timeout=5)
        assert missing.rcode() == dns.rcode.NXDOMAIN
        # a name with only an A record resolves through its A answer alone
        assert await DnsResolver(server.address)("v4only.test", 9) == [
            (socket.AF_INET, ("127.0.0.2", 9))]
    finally:
        server.close()


async def test_dns_server_as_a_subprocess() -> None:
    script = Path(__file__).parent / "support" / "dnsserver.py"
    proc = subprocess.Popen([sys.executable, str(script), "--name", "api.test=127.0.0.1",
                             "--name", "both.test=127.0.0.1,::1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.to_thread(proc.stdout.readline)  # the readiness line: its port
        port = int(line)
        resolver = DnsResolver(f"127.0.0.1:{port}")
        assert await resolver("both.test", 5) == [(socket.AF_INET, ("127.0.0.1", 5)),
                                                  (socket.AF_INET6, ("::1", 5))]
        proc.stdin.close()  # the server stops when its stdin closes
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
