"""Instructions the HTTP/1.1 server runs per hello-world request (valgrind's callgrind).

Wall-clock req/s swings with the machine's load; instruction counts do not. Two shapes:

- ``core``: the sans-I/O core alone (``HttpServerProtocol``): one GET head in (``--head``:
  wrk's by default, h2load's, or a 12-field browser-like one),
  the hello app's response out (``receive_data``, ``start_response``, ``send_body``).
- ``server``: the whole server path as ``trunkline serve hello -q`` runs it (uvloop, access
  log on but its logger at WARNING, lifespan auto) on a real socket (``tcp`` or ``unix``),
  driven by a raw keep-alive client in a child process that valgrind does not follow:
  ``--connections`` connections, each sending the next GET when its answer is in.

Each figure is (I(N2) - I(N1)) / (N2 - N1), so start-up and warm-up cancel out::

    python benchmarks/http_core_cost.py                      # core, tcp and unix, 1 and 50
    python benchmarks/http_core_cost.py --shapes core,tcp --connections 1
    python benchmarks/http_core_cost.py --head h2load   # the head bench http's h2load sends
    # one run to profile (then callgrind_annotate --inclusive=yes FILE):
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        python benchmarks/http_core_cost.py run tcp 3000 --connections 50

The counts include the event loop's own work (uvloop, libuv) and exclude the kernel's.
With many connections the server reads several per loop pass (the client outruns a server
under valgrind), as under load; with one, every request is a pass of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import selectors
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

#: the request heads ``--head`` chooses from: wrk's (1 field), h2load's (2 fields, what
#: issue 12's ``bench http`` sends) and a browser-like one (12 fields)
HEADS = {
    "wrk": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "h2load": b"GET / HTTP/1.1\r\nHost: localhost\r\nuser-agent: h2load nghttp2/1.52.0\r\n\r\n",
    "browser": (
        b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\n"
        b"Accept-Encoding: gzip, deflate, br\r\n"
        b"Connection: keep-alive\r\n"
        b"Cookie: session=3f2a9c1e7b; theme=dark\r\n"
        b"Upgrade-Insecure-Requests: 1\r\n"
        b"Sec-Fetch-Dest: document\r\n"
        b"Sec-Fetch-Mode: navigate\r\n"
        b"Sec-Fetch-Site: none\r\n"
        b"Cache-Control: max-age=0\r\n\r\n"
    ),
}
REQUEST = HEADS["wrk"]
BODY = b"Hello, world!\n"


def run_core(requests: int) -> None:
    from trunkline.apps.hello import _BODY, _START
    from trunkline.protocol.http_server import HttpServerProtocol

    core = HttpServerProtocol()
    start_headers = _START["headers"]
    body = _BODY["body"]
    for _ in range(requests):
        events = core.receive_data(REQUEST)
        head = events[0]
        core.start_response(head, 200, start_headers)
        core.send_body(body, False)


def run_server(kind: str, requests: int, connections: int, head: str) -> None:
    from trunkline._loop import run
    from trunkline.apps.hello import hello_app
    from trunkline.server.run import AppServer

    logging.basicConfig(level=logging.WARNING)  # as `trunkline serve -q`

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            url = "tcp://127.0.0.1:0" if kind == "tcp" else f"unix://{tmp}/s.sock"
            async with AppServer(hello_app, url) as server:
                child = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "client", server.urls[0], str(requests),
                    str(connections), "--head", head)
                status = await child.wait()
                if status:
                    raise SystemExit(f"client failed ({status})")

    run(main())


def run_client(url: str, requests: int, connections: int) -> None:
    """``requests`` GETs over ``connections`` keep-alive connections, one in flight each."""
    if url.startswith("tcp://"):
        host, port = url[6:].rsplit(":", 1)
        socks = [socket.create_connection((host, int(port))) for _ in range(connections)]
    else:
        path = url.removeprefix("unix://")
        socks = []
        for _ in range(connections):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            socks.append(s)
    sel = selectors.DefaultSelector()
    left = requests
    tails = {}
    for s in socks:
        if left:
            s.sendall(REQUEST)
            left -= 1
            sel.register(s, selectors.EVENT_READ)
            tails[s] = b""
    pending = requests
    while pending:
        for key, _ in sel.select():
            s = key.fileobj
            data = s.recv(65536)  # type: ignore[union-attr]
            if not data:
                raise SystemExit("server closed a connection")
            buf = tails[s] + data
            done = buf.count(BODY)
            if not done:
                tails[s] = buf
                continue
            tails[s] = buf[buf.rfind(BODY) + len(BODY):]
            pending -= done
            for _ in range(done):
                if left:
                    s.sendall(REQUEST)  # type: ignore[union-attr]
                    left -= 1
    for s in socks:
        s.close()


def instructions(shape: str, requests: int, connections: int, head: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                sys.executable, __file__, "run", shape, str(requests),
                "--connections", str(connections), "--head", head]
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"{shape} failed:\n{proc.stderr[-2000:]}")
        match = re.search(r"Collected : (\d+)", proc.stderr)
        if match is None:
            with open(out) as f:
                match = re.search(r"^summary: (\d+)", f.read(), re.M)
        assert match is not None
        return int(match.group(1))


def main() -> None:
    global REQUEST
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    one = sub.add_parser("run", help="serve (or parse) N requests once (to profile)")
    one.add_argument("shape", choices=["core", "tcp", "unix"])
    one.add_argument("requests", type=int)
    one.add_argument("--connections", type=int, default=50)
    one.add_argument("--head", choices=sorted(HEADS), default="wrk")
    cl = sub.add_parser("client")
    cl.add_argument("url")
    cl.add_argument("requests", type=int)
    cl.add_argument("connections", type=int)
    cl.add_argument("--head", choices=sorted(HEADS), default="wrk")
    parser.add_argument("--shapes", default="core,tcp,unix")
    parser.add_argument("--connections", default="1,50")
    parser.add_argument("--n1", type=int, default=1000)
    parser.add_argument("--n2", type=int, default=4000)
    parser.add_argument("--head", choices=sorted(HEADS), default="wrk",
                        help="the request head sent: wrk's (1 field, the default), "
                        "h2load's (2) or a browser's (12)")
    args = parser.parse_args()
    REQUEST = HEADS[args.head]
    if args.cmd == "client":
        run_client(args.url, args.requests, args.connections)
    elif args.cmd == "run":
        if args.shape == "core":
            run_core(args.requests)
        else:
            run_server(args.shape, args.requests, args.connections, args.head)
    else:
        for shape in args.shapes.split(","):
            conns = [1] if shape == "core" else [int(c) for c in args.connections.split(",")]
            for c in conns:
                n1, n2 = args.n1, args.n2
                if shape == "core":
                    n1, n2 = n1 * 10, n2 * 10
                i1 = instructions(shape, n1, c, args.head)
                i2 = instructions(shape, n2, c, args.head)
                label = shape if shape == "core" else f"{shape} x{c}"
                print(f"{label:10} {(i2 - i1) / (n2 - n1):10.0f} instructions/request",
                      flush=True)


if __name__ == "__main__":
    main()
