"""The tour's "by name" leg: two services register, callers ask for them by name.

Two small HTTP services, ``users`` and ``orders``, each on a Unix socket path (in the tour's
private temp dir) and TCP, register in a registry of the tour's own (a SQLite file in the
temp dir) with ``serve --name``'s host hook. A client in this process calls
``http+svc://users/`` and ``http+svc://orders/``: the registry's answer, ranked for where
the client stands, gives it the Unix socket, and the leg shows the ranking and its reasons
(the traced ``discover`` step). Then ``requests`` keep-alive GETs by name and as many to the
same socket by its address, interleaved, give the cost of the name side by side.

Run as root, the leg also makes a second "host": a network namespace joined to this one by
a veth pair on a /30 of 198.18.0.0/24 (the benchmarking range), where the services also
listen. A ``trunkline call http+svc://users/`` run there (``ip netns exec``: its own network
and mount namespaces) is given TCP on the veth address, with the Unix socket skipped and
why; the same call to that address directly is timed beside it. The namespace (and with it
the veth pair) is deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..address import Address
from ..registry.hook import registration_hook
from ..trace.events import Step, Tracer
from .legs import Leg, TourContext, register_leg
from .model import Latency, LegResult

if TYPE_CHECKING:
    from ..server.cycle import Receive, Scope, Send

__all__ = ["ByNameLeg", "ByNameLegResult", "NamedCall"]

SERVICES = ("users", "orders")
RANGE = ipaddress.IPv4Network("198.18.0.0/24")


@dataclass
class NamedCall:
    """One call by name: where the caller stood, what the registry's ranking gave it."""

    caller: str  # "this host" or "host B (netns ...)"
    url: str
    chosen: str = ""
    reason: str = ""
    ranking: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    instances: int = 0
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)  # what the service said it saw
    discover_ns: int | None = None
    total_ns: int | None = None
    direct_total_ns: int | None = None  # the same call to the chosen address (host B)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class ByNameLegResult(LegResult):
    registry: str = ""
    services: dict[str, list[str]] = field(default_factory=dict)  # name -> registered URLs
    calls: list[NamedCall] = field(default_factory=list)
    requests: int = 0
    direct_url: str = ""
    by_name: Latency | None = None
    direct: Latency | None = None
    host_b: str | None = None  # why there is no host B, or its namespace

    @property
    def ratio(self) -> float | None:
        if self.by_name is None or self.direct is None or not self.direct.p50_ns:
            return None
        return round(self.by_name.p50_ns / self.direct.p50_ns, 3)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "registry": self.registry, "services": self.services,
                "calls": [c.to_dict() for c in self.calls], "requests": self.requests,
                "direct_url": self.direct_url,
                "by_name": self.by_name.to_dict() if self.by_name else None,
                "direct": self.direct.to_dict() if self.direct else None,
                "p50_by_name_vs_direct": self.ratio, "host_b": self.host_b}


def service_app(name: str) -> Any:
    """An ASGI app that answers with its name and the socket the call came in on."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        seen = scope.get("extensions", {}).get("trunkline.transport", {})
        body = json.dumps({"service": name, "pid": os.getpid(), "kind": seen.get("kind"),
                           "local": seen.get("local")}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    return app


class ByNameLeg(Leg):
    name = "byname"
    title = "By name (service registry)"
    kind = "http"

    def __init__(self, requests: int | None = None) -> None:
        self.requests = requests

    def new_result(self) -> ByNameLegResult:
        return ByNameLegResult(self.name, self.title, self.kind)

    async def run(self, ctx: TourContext, bound: list[Address]) -> ByNameLegResult:
        from ..client import Client
        from ..registry import Resolver, open_registry
        from ..server.run import AppServer

        result = self.new_result()
        result.requests = self.requests or max(ctx.rounds // 4, 10)
        db = ctx.tmpdir / "registry.db"
        result.registry = registry = f"sqlite://{db}"
        ctx.stack.callback(_remove_registry, db)  # after the services deregistered
        host_b = await asyncio.to_thread(HostB.make) if HostB.unavailable() is None else None
        if host_b is not None:
            ctx.stack.callback(host_b.close)
            result.host_b = f"network namespace {host_b.namespace}"
        else:
            result.host_b = HostB.unavailable()
        for name in SERVICES:
            urls = [f"unix://{ctx.tmpdir / (name + '.sock')}", "tcp://127.0.0.1:0"]
            if host_b is not None:
                urls.append(f"tcp://{host_b.here}:0")
            hook = registration_hook(name, protocol="http", registry=registry, ttl=10)
            server = AppServer(service_app(name), *urls, hooks=[hook])
            await server.start()
            ctx.stack.push_async_callback(server.aclose, 2.0)
            result.services[name] = server.urls
        users_sock = result.services["users"][0]
        result.server_url = ", ".join(result.services["users"])
        result.client_url = "http+svc://users/"
        names = Resolver(open_registry(registry), owns_store=True)
        ctx.stack.push_async_callback(names.aclose)
        async with Client(registry=names) as client:
            for name in SERVICES:
                ctx.progress(f"{self.title}: calling http+svc://{name}/")
                result.calls.append(await _call_here(client, name, ctx.timeout))
            ctx.progress(f"{self.title}: {result.requests} calls by name and by address")
            result.direct_url = "http+unix://" + quote(users_sock.removeprefix("unix://"),
                                                       safe="") + "/"
            result.by_name, result.direct = await _side_by_side(
                client, "http+svc://users/", result.direct_url, result.requests)
        if host_b is not None:
            ctx.progress(f"{self.title}: calling from host B")
            tcp = next(u for u in result.services["users"] if host_b.here in u)
            result.calls.append(await asyncio.to_thread(
                host_b.call, registry, "http://" + tcp.removeprefix("tcp://") + "/",
                ctx.timeout))
        errors = [f"{c.caller} {c.url}: {c.error}" for c in result.calls if c.error]
        if errors:
            result.error = "; ".join(errors)
        return result


async def _call_here(client: Any, name: str, timeout: float) -> NamedCall:
    call = NamedCall("this host", f"http+svc://{name}/")
    tracer = Tracer()
    start = time.monotonic_ns()
    try:
        response = await client.get(call.url, tracer=tracer, timeout=timeout)
        call.total_ns = time.monotonic_ns() - start
        call.status = response.status_code
        call.answer = response.json()
    except Exception as exc:  # shown in the leg; the tour goes on
        call.error = str(exc) or type(exc).__name__
    discover = next((e for e in tracer.events if e.step is Step.DISCOVER), None)
    if discover is not None:
        _take_discover(call, discover.detail)
        call.discover_ns = discover.duration_ns
    return call


def _take_discover(call: NamedCall, detail: dict[str, Any]) -> None:
    call.chosen = str(detail.get("chosen") or "")
    call.reason = str(detail.get("reason") or "")
    call.ranking = list(detail.get("ranking") or [])
    call.skipped = list(detail.get("skipped") or [])
    call.instances = int(detail.get("instances") or 0)


async def _side_by_side(client: Any, by_name: str, direct: str, requests: int
                        ) -> tuple[Latency | None, Latency | None]:
    """``requests`` keep-alive GETs each way, interleaved in blocks of 10 (the machine's
    noise falls on both alike), after a warm-up of each."""
    named: list[int] = []
    plain: list[int] = []
    for url in (by_name, direct):
        await client.get(url)
    clock = time.perf_counter_ns
    while len(named) < requests:
        for url, samples in ((by_name, named), (direct, plain)):
            for _ in range(min(10, requests - len(samples))):
                start = clock()
                await client.get(url)
                samples.append(clock() - start)
    return Latency.from_samples(named, 0), Latency.from_samples(plain, 0)


def _remove_registry(db: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{db}{suffix}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(db.parent / (db.name + ".lock"))


class HostB:
    """A network namespace joined to this one by a veth pair on a free /30 of 198.18.0.0/24:
    another host as far as sockets can tell (``ip netns exec`` gives its processes their own
    mount namespace too)."""

    def __init__(self, namespace: str, here: str, there: str, veth: str) -> None:
        self.namespace = namespace
        self.here = here  # this end's address (the services listen there too)
        self.there = there
        self.veth = veth

    @staticmethod
    def unavailable() -> str | None:
        if os.geteuid() != 0:
            return "not run as root: host B (a network namespace) needs root"
        if shutil.which("ip") is None:
            return "iproute2's ip command is not installed: no host B"
        return None

    @classmethod
    def make(cls) -> HostB | None:
        tag = secrets.token_hex(3)
        namespace, veth, peer = f"tl-tour-{tag}", f"tlt{tag}h", f"tlt{tag}b"
        subnet = _free_subnet()
        here, there = (str(a) for a in list(subnet.hosts())[:2])
        host = cls(namespace, here, there, veth)
        try:
            _ip("netns", "add", namespace)
            _ip("link", "add", veth, "type", "veth", "peer", "name", peer, "netns", namespace)
            _ip("addr", "add", f"{here}/30", "dev", veth)
            _ip("link", "set", veth, "up")
            _ip("-n", namespace, "addr", "add", f"{there}/30", "dev", peer)
            _ip("-n", namespace, "link", "set", peer, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        except BaseException:
            host.close()
            raise
        return host

    def call(self, registry: str, direct: str, timeout: float) -> NamedCall:
        """``trunkline call`` by name from host B (its discover step from ``--trace=json``),
        then the same service by its TCP address, each timed by the call itself."""
        call = NamedCall(f"host B ({self.namespace}, {self.there})", "http+svc://users/")
        command = ["ip", "netns", "exec", self.namespace, sys.executable, "-m", "trunkline",
                   "call", "--connect-timeout", str(timeout)]
        try:
            done = subprocess.run([*command, call.url, "--registry", registry,
                                   "--trace=json", "-w", "%{http_code}"],
                                  capture_output=True, timeout=timeout + 30, check=False)
            if done.returncode != 0:
                call.error = done.stderr.decode(errors="replace").strip()[-300:]
                return call
            body, _, code = done.stdout.decode().rpartition("}")
            call.answer = json.loads(body + "}")
            call.status = int(code)
            trace = json.loads(done.stderr)
            summary = trace["summary"]
            _take_discover(call, summary.get("discover") or {})
            call.discover_ns = int((summary.get("time_discover") or 0) * 1e9)
            call.total_ns = int(summary["time_total"] * 1e9)
            plain = subprocess.run([*command, direct, "-o", "/dev/null", "-w",
                                    "%{time_total}"], capture_output=True,
                                   timeout=timeout + 30, check=False)
            if plain.returncode == 0:
                call.direct_total_ns = int(float(plain.stdout) * 1e9)
        except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
            call.error = f"{type(exc).__name__}: {exc}"
        return call

    def close(self) -> None:
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True,
                       timeout=20, check=False)  # the veth pair goes with it
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=20,
                       check=False)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20,
                          check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of 198.18.0.0/24 that no interface here uses, picked at random (tours and
    tests run at once must not share one)."""
    done = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                          timeout=20, check=False)
    used = [ipaddress.IPv4Interface(word).network for line in done.stdout.splitlines()
            for word in line.split() if word.startswith("198.18.")]
    subnets: list[ipaddress.IPv4Network] = list(RANGE.subnets(new_prefix=30))
    secrets.SystemRandom().shuffle(subnets)
    for subnet in subnets:
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise OSError("every /30 of 198.18.0.0/24 is in use here: no host B")


register_leg(ByNameLeg)
