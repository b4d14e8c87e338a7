"""Separate processes for the registry tests: ``python registry_worker.py COMMAND ...``.

  hold REGISTRY NAME [URL...]   register one instance (ttl from $TTL, default 3), print
                                "registered <id>", keep it alive until stdin closes
  burst REGISTRY NAME COUNT     fork COUNT processes that register at the same moment (a
                                pipe releases them together), each prints "registered <id>";
                                they deregister and exit when stdin closes
  serve REGISTRY NAME DIR       serve a byte echo on a Unix path, an abstract name and
                                tcp://0.0.0.0:0, register it, print "registered <json>",
                                run until stdin closes
  resolve REGISTRY NAME         resolve NAME, do one echo round trip to the best candidate,
                                print the resolution (and the host identity) as JSON

Every line is flushed at once; the tests read them, never sleep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import sys

from trunkline.registry import HostIdentity, Registration, Resolver, make_instance, open_registry


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def stdin_closed() -> None:
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


def ttl() -> float:
    return float(os.environ.get("TTL", "3"))


async def hold(registry: str, name: str, urls: list[str]) -> None:
    instance = make_instance(name, urls or [f"unix:@tl-hold-{secrets.token_hex(4)}"],
                             ttl=ttl(), instance_id=os.environ.get("INSTANCE_ID"))
    async with Registration(instance, open_registry(registry), owns_store=True):
        say(f"registered {instance.id}")
        await stdin_closed()


def burst(registry: str, name: str, count: int) -> None:
    go_read, go_write = os.pipe()
    stop_read, stop_write = os.pipe()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.close(stop_write)
            code = 1
            try:
                os.read(go_read, 1)  # all children wait here, then start at once
                asyncio.run(_burst_child(registry, name, stop_read))
                code = 0
            except BaseException as exc:
                say(f"failed {type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        children.append(pid)
    os.close(stop_read)
    os.write(go_write, b"g" * count)
    sys.stdin.buffer.read()
    os.close(stop_write)  # children read EOF: deregister and exit
    failures = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failures += status != 0
    say(f"done {count - failures} ok {failures} failed")


async def _burst_child(registry: str, name: str, stop_read: int) -> None:
    instance = make_instance(name, [f"unix:@tl-burst-{secrets.token_hex(6)}"], ttl=ttl())
    async with Registration(instance, open_registry(registry), owns_store=True):
        say(f"registered {instance.id}")
        await asyncio.get_running_loop().run_in_executor(None, os.read, stop_read, 1)


async def serve(registry: str, name: str, directory: str) -> None:
    import trunkline

    async def echo(stream: trunkline.Stream) -> None:
        while data := await stream.read():
            await stream.send(data)

    urls = [f"unix://{directory}/{name}.sock", f"unix:@tl-{name}-{secrets.token_hex(4)}",
            "tcp://0.0.0.0:0"]
    server = await trunkline.serve(echo, *urls)
    try:
        instance = make_instance(name, server.urls, ttl=ttl())
        async with Registration(instance, open_registry(registry), owns_store=True):
            say("registered " + json.dumps({"id": instance.id, "urls": instance.urls,
                                            "host": instance.host.to_dict()}))
            await stdin_closed()
    finally:
        server.close()


async def resolve(registry: str, name: str) -> None:
    import trunkline

    async with Resolver(open_registry(registry), owns_store=True) as resolver:
        answer = await resolver.resolve(name)
        stream = await trunkline.connect(answer.best.url, timeout=5)
        await stream.send(b"ping")
        echoed = await stream.readexactly(4)
        stream.close()
        say(json.dumps({
            "candidates": [{"url": c.url, "kind": c.kind, "reason": c.reason}
                           for c in answer.candidates],
            "skipped": [{"url": s.url, "reason": s.reason} for s in answer.skipped],
            "echo": echoed.decode(), "host": HostIdentity.current().to_dict()}))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    command, registry, name, *rest = sys.argv[1:]
    if command == "burst":
        burst(registry, name, int(rest[0]))
    elif command == "hold":
        asyncio.run(hold(registry, name, rest))
    elif command == "serve":
        asyncio.run(serve(registry, name, rest[0]))
    elif command == "resolve":
        asyncio.run(resolve(registry, name))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
