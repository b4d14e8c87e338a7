"""Instructions per WebSocket echo round trip, counted by valgrind's callgrind: a number that
does not move with the machine's load, unlike ``trunkline bench ws``.

One process runs both ends on uvloop: an ``AppServer`` with the built-in ASGI
``websocket_echo`` (compression and keepalive off, as in the bench) and a
``trunkline.websocket`` client, over a Unix socket path or TCP loopback. The client sends
32-byte binary messages: ``seq`` waits for each echo before the next send, ``pipe`` keeps 16
in flight. Each count is the difference of two runs (``--n1`` and ``--n2`` round trips after
the same warm-up), divided by ``n2 - n1``, so start-up cancels out; ``PYTHONHASHSEED=0``.
The figure covers both ends (server + client), user space only (no kernel time).

``--ends split`` measures each end in its own process instead (the bench's shape: the
server as ``python -m trunkline.bench.ws_peers serve``, the client through
``ws_peers.connect``; one end under callgrind, the other not): client, server and their sum,
for ``--impl trunkline`` or ``--impl picows`` (TCP only) alike, so the gap to picows is in
instructions too.

``--app native`` runs the server end without ASGI (the protocol's own ``recv``/``send``
under the app), to see what the ASGI call costs; ``--src DIR`` imports trunkline from
another checkout's ``src`` (``git archive main src | tar -x -C /tmp/main``) to compare.

    python benchmarks/ws_instructions.py                        # unix and tcp, seq and pipe
    python benchmarks/ws_instructions.py --kinds unix --modes seq --app native
    python benchmarks/ws_instructions.py --src /tmp/main/src --json
    python benchmarks/ws_instructions.py --ends split --kinds tcp --modes seq --impl picows
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

PAYLOAD = 32
DEPTH = 16  # messages in flight, pipe
WARMUP = 2000


# --------------------------------------------------------------------------- the driver


async def _native(scope: Any, receive: Any, send: Any) -> None:
    from trunkline.aio.websocket import WebSocket

    await receive()
    await send({"type": "websocket.accept"})
    ws = WebSocket(send.__self__.ws)  # the connection under the ASGI calls
    recv, echo = ws.recv, ws.send
    while True:
        await echo(await recv())


async def _drive(count: int, kind: str, mode: str, app_name: str) -> None:
    import trunkline
    from trunkline.apps.websocket_echo import websocket_echo
    from trunkline.protocol.websocket import WebSocketOptions
    from trunkline.server import AppServer, ServerConfig, websocket_handler

    app = _native if app_name == "native" else websocket_echo
    where = tempfile.mkdtemp(prefix="tlwsi-", dir="/tmp")
    url = f"unix://{where}/s.sock" if kind == "unix" else "tcp://127.0.0.1:0"
    server = AppServer(app, url, config=ServerConfig(access_log=False, lifespan="off"),
                       websocket_handler=websocket_handler(
                           WebSocketOptions(compression=False, ping_interval=None)))
    await server.start()
    try:
        if kind == "unix":
            ws_url = "ws+unix://" + f"{where}/s.sock".replace("/", "%2F") + "/"
        else:
            ws_url = f"ws://127.0.0.1:{server.urls[0].rsplit(':', 1)[1]}/"
        ws = await trunkline.websocket(ws_url, compression=False, max_size=None)
        payload = os.urandom(PAYLOAD)
        send, recv = ws.send, ws.recv

        await _exchange(send, recv, payload, mode, WARMUP)
        await _exchange(send, recv, payload, mode, count)
        await ws.close()
    finally:
        await server.shutdown()
        shutil.rmtree(where, ignore_errors=True)


async def _exchange(send: Any, recv: Any, payload: bytes, mode: str, n: int) -> None:
    """n echo round trips: one at a time (seq), or DEPTH in flight (pipe)."""
    if mode == "seq":
        for _ in range(n):
            await send(payload)
            await recv()
        return
    for _ in range(DEPTH):
        await send(payload)
    for _ in range(n - DEPTH):
        await recv()
        await send(payload)
    for _ in range(DEPTH):
        await recv()


async def _drive_client(count: int, impl: str, kind: str, mode: str, where: str) -> None:
    from trunkline.bench import ws_peers

    send, recv, close = await ws_peers.connect(impl, kind, where)
    payload = os.urandom(PAYLOAD)

    await _exchange(send, recv, payload, mode, WARMUP)
    await _exchange(send, recv, payload, mode, count)
    await close()


def _client_child(argv: list[str]) -> None:
    count, impl, kind, mode, where = int(argv[0]), argv[1], argv[2], argv[3], argv[4]
    import uvloop

    uvloop.run(_drive_client(count, impl, kind, mode, where))


def _child(argv: list[str]) -> None:
    count, kind, mode, app = int(argv[0]), argv[1], argv[2], argv[3]
    import uvloop

    uvloop.run(_drive(count, kind, mode, app))


# --------------------------------------------------------------------------- callgrind


def _instructions(count: int, kind: str, mode: str, app: str, src: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="tlwsi-cg-") as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        if src:
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, os.path.abspath(__file__), "--child", str(count),
                        kind, mode, app], check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return _total(out)


def _total(path: str) -> int:
    with open(path) as f:
        for line in f:
            found = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if found:
                return int(found.group(1))
    raise RuntimeError("no instruction total in callgrind's output")


def _split_instructions(count: int, impl: str, kind: str, mode: str, end: str,
                        src: str | None) -> int:
    """Instructions of one end (``client`` or ``server``) over ``count`` round trips (plus
    the warm-up), the two ends in two processes."""
    with tempfile.TemporaryDirectory(prefix="tlwsi-cg-") as tmp:
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, PYTHONHASHSEED="0")
        if src:
            env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        serve = [sys.executable, "-m", "trunkline.bench.ws_peers", "serve", "--impl", impl]
        if kind == "unix":
            serve += ["--unix", os.path.join(tmp, "s.sock")]
        server = subprocess.Popen((grind if end == "server" else []) + serve, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        try:
            assert server.stdout is not None and server.stdin is not None
            line = server.stdout.readline().decode()
            if not line.startswith("READY "):
                raise RuntimeError(f"the {impl} server did not start: {line!r}")
            where = json.loads(line.split(" ", 1)[1])[kind]
            client = (grind if end == "client" else []) + [
                sys.executable, os.path.abspath(__file__), "--client-child", str(count), impl,
                kind, mode, where]
            subprocess.run(client, check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        finally:
            assert server.stdin is not None
            server.stdin.close()
            server.wait(120)
        keep = os.environ.get("TLWSI_KEEP")  # a folder: keep callgrind's file for annotate
        if keep:
            shutil.copy(out, os.path.join(keep, f"{impl}.{kind}.{mode}.{end}.{count}.cg"))
        return _total(out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--client-child":
        _client_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="unix,tcp", help="unix, tcp (comma-separated)")
    parser.add_argument("--modes", default="seq,pipe", help="seq, pipe (comma-separated)")
    parser.add_argument("--app", choices=("echo", "native"), default="echo")
    parser.add_argument("--ends", choices=("both", "split"), default="both",
                        help="both ends in one process, or each end in its own")
    parser.add_argument("--impl", choices=("trunkline", "picows"), default="trunkline",
                        help="with --ends split: whose client and server")
    parser.add_argument("--n1", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=4000)
    parser.add_argument("--src", help="import trunkline from this src directory instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    results = []
    for kind in args.kinds.split(","):
        for mode in args.modes.split(","):
            if args.ends == "split":
                per_end = {}
                for end in ("client", "server"):
                    low = _split_instructions(args.n1, args.impl, kind, mode, end, args.src)
                    high = _split_instructions(args.n2, args.impl, kind, mode, end, args.src)
                    per_end[end] = (high - low) / (args.n2 - args.n1)
                total = per_end["client"] + per_end["server"]
                results.append({"kind": kind, "mode": mode, "impl": args.impl,
                                "client": round(per_end["client"]),
                                "server": round(per_end["server"]), "total": round(total)})
                if not args.json:
                    print(f"{kind:5} {mode:5} {args.impl:9} client {per_end['client']:8,.0f}"
                          f"  server {per_end['server']:8,.0f}  total {total:8,.0f}"
                          " instructions per round trip", flush=True)
                continue
            low = _instructions(args.n1, kind, mode, args.app, args.src)
            high = _instructions(args.n2, kind, mode, args.app, args.src)
            per = (high - low) / (args.n2 - args.n1)
            results.append({"kind": kind, "mode": mode, "app": args.app,
                            "instructions_per_round_trip": round(per)})
            if not args.json:
                print(f"{kind:5} {mode:5} {args.app:7} {per:10,.0f} instructions per round trip",
                      flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
