"""A small real DNS server for tests: UDP on 127.0.0.1, answers from a name table.

In-process (pytest fixture ``dns_server``, or ``await start_dns_server({...})``)::

    server = await start_dns_server({"api.test": ["127.0.0.1"], "v6.test": ["::1"]})
    server.address  # "127.0.0.1:PORT"

As a subprocess (for CLI tests), printing its port on the first line of stdout and serving
until SIGTERM/SIGINT, or until stdin closes when stdin is a pipe::

    python tests/support/dnsserver.py --name api.test=127.0.0.1 --name both.test=127.0.0.1,::1

Known names get authoritative A/AAAA answers (an empty answer when the name has no address
of the asked family); unknown names get NXDOMAIN; names in ``silent`` are never answered, so
a client times out. Messages are parsed and built with dnspython (``from_wire``,
``make_response``); only the answer table is ours.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

TTL = 5


def _normalize(name: str) -> str:
    return name.rstrip(".").lower() + "."


@dataclass
class DnsServer(asyncio.DatagramProtocol):
    """Answers queries from ``table`` (name -> IPs). ``queries`` logs (name, type) asked."""

    table: dict[str, list[str]]
    silent: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return  # not DNS: drop it, as a real server would
        response = self.answer(query)
        if response is not None and self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name.rstrip("."), rdtype))
            if name in self.silent:
                return None
            if name not in self.table:
                response.set_rcode(dns.rcode.NXDOMAIN)
                continue
            wanted = [ip for ip in self.table[name] if _rdtype_of(ip) == rdtype]
            if wanted:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, TTL, dns.rdataclass.IN, rdtype, wanted))
        return response

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _rdtype_of(ip: str) -> str:
    return "AAAA" if ipaddress.ip_address(ip).version == 6 else "A"


async def start_dns_server(names: Mapping[str, Iterable[str]], *, port: int = 0,
                           silent: Iterable[str] = ()) -> DnsServer:
    """A running server on 127.0.0.1 (port 0: a free one). Close it with ``close()``."""
    table = {_normalize(name): list(ips) for name, ips in names.items()}
    for ips in table.values():
        for ip in ips:
            ipaddress.ip_address(ip)  # fail early on a typo
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DnsServer(table, {_normalize(n) for n in silent}), local_addr=("127.0.0.1", port))
    return protocol


TEST_NAMES = {"api.test": ["127.0.0.1"], "v6.test": ["::1"], "both.test": ["127.0.0.1", "::1"]}

try:  # the fixture, for test modules that import it from tests.support.dnsserver
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def dns_server() -> AsyncIterator[DnsServer]:
        server = await start_dns_server(TEST_NAMES, silent=["slow.test"])
        try:
            yield server
        finally:
            server.close()
except ImportError:  # pragma: no cover - running as a plain script
    pass


def _parse_names(specs: list[str]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, ips = spec.partition("=")
        if not sep or not name or not ips:
            raise SystemExit(f"--name wants NAME=IP[,IP...], e.g. api.test=127.0.0.1; got {spec!r}")
        names.setdefault(name, []).extend(ip.strip() for ip in ips.split(","))
    return names


async def _main(args: argparse.Namespace) -> None:
    server = await start_dns_server(_parse_names(args.name or []), port=args.port,
                                    silent=args.silent or [])
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def stop() -> None:
        if not done.done():
            done.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    watcher = None
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        # Stdin is a pipe from a parent: stop when it closes, so we never outlive a test.
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def watch_stdin() -> None:
            while await reader.read(4096):
                pass
            stop()

        watcher = loop.create_task(watch_stdin())
    try:
        await done
    finally:
        server.close()
        if watcher is not None:
            watcher.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description="A test DNS server on 127.0.0.1 (UDP).")
    parser.add_argument("--name", action="append", metavar="NAME=IP[,IP]",
                        help="answer NAME with these addresses (repeatable)")
    parser.add_argument("--silent", action="append", metavar="NAME",
                        help="never answer NAME (clients time out)")
    parser.add_argument("--port", type=int, default=0, help="UDP port (default: a free one)")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
