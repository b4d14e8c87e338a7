"""The layer rules of ARCHITECTURE.md, checked on the source's imports and calls (ast, no import).

| layer       | may import                                                               |
|-------------|--------------------------------------------------------------------------|
| errors      | stdlib only, nothing from trunkline                                      |
| trace/      | stdlib only, nothing from trunkline outside trace/; optional extras and  |
|             | trunkline.errors only lazily (inside functions, or TYPE_CHECKING)        |
| address     | stdlib, and trunkline.errors                                             |
| _loop/      | stdlib only (uvloop lazily), nothing from trunkline outside _loop/       |
| protocol/   | stdlib (never asyncio, socket, selectors), httptools, websockets' sans-I/O |
|             | modules; from trunkline only address, errors, trace and protocol/ itself |
| transport/  | stdlib, uvloop; from trunkline only address, errors, trace and           |
|             | transport/ itself (never cli/, protocol/ or anything above)              |
| registry/   | stdlib, psutil, aetcd; from trunkline only address, errors, trace, _loop |
|             | and registry/ itself (never cli/, server/, client/)                      |
| host        | from trunkline only transport, _loop, trace, address, errors (the one    |
|             | service host sits under every server: never aio/, server/ or above)      |
| workers     | from trunkline only host, transport, _loop, trace, address, errors (the  |
|             | supervisor forks servers it is handed; it knows none of them)            |
| aio/        | from trunkline only host, transport, protocol, _loop, trace, address,    |
|             | errors, registry (serve(name=), connect("svc://"))                       |
| library     | never a tool package (cli, bench, tour, apps) at module level; a fresh   |
|             | ``import trunkline`` loads no tool and no trace renderer                 |
| errors      | public error classes of the library live in errors.py, client/errors.py  |
| everywhere  | only cli/ (and bench/) call print() or exit the process                  |
| everywhere  | asyncio's private names (``Future._callbacks``, ``tasks._enter_task``,    |
|             | ``_asyncio``, loop internals) only in _loop/                              |
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import trunkline

PACKAGE_DIR = Path(trunkline.__file__).resolve().parent
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Module:
    name: str  # dotted, e.g. trunkline.transport.tcp
    path: Path
    tree: ast.Module

    @property
    def layer(self) -> str:
        """The first component below trunkline: 'transport' for trunkline.transport.tcp."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ""

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(PACKAGE_DIR.parent)}:{getattr(node, 'lineno', '?')}"


def _modules() -> list[Module]:
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(Module(".".join(parts), path, ast.parse(path.read_text(), str(path))))
    return found


MODULES = _modules()


def imports(module: Module) -> list[tuple[str, ast.AST, bool]]:
    """Every module ``module`` imports, as (absolute dotted name, node, lazy). An import is lazy
    when it runs only inside a function or under ``if TYPE_CHECKING:``, so importing the
    module does not import it."""
    out: list[tuple[str, ast.AST, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            out.extend((alias.name, node, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.name.split(".")
                if not module.is_package:
                    package.pop()
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import a, b: each name may be a module
                out.extend((f"{target}.{alias.name}", node, lazy) for alias in node.names)
            else:
                out.append((target, node, lazy))
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
            isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(module.tree, False)
    return out


def layer_of(name: str) -> str | None:
    """'transport' for trunkline.transport.tcp; None for anything outside trunkline."""
    parts = name.split(".")
    if parts[0] != "trunkline":
        return None
    return parts[1] if len(parts) > 1 else ""


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in STDLIB


def violations(layer: str, allowed_trunkline: set[str], allowed_foreign: set[str],
               banned_stdlib: frozenset[str] = frozenset(), *,
               lazy_trunkline: frozenset[str] = frozenset(), lazy_foreign: bool = False
               ) -> list[str]:
    """Imports in ``layer`` outside what it may import. ``lazy_*`` loosen the rules for
    imports that happen only when a function runs (optional extras, error paths)."""
    found = []
    for module in MODULES:
        if module.layer != layer:
            continue
        for name, node, lazy in imports(module):
            top = name.split(".")[0]
            inner = layer_of(name)
            if inner is not None:
                ok = inner in allowed_trunkline or (lazy and inner in lazy_trunkline)
            elif _is_stdlib(name):
                ok = top not in banned_stdlib
            else:
                ok = (lazy and lazy_foreign) or any(
                    name == f or name.startswith(f + ".") for f in allowed_foreign)
            if not ok:
                how = "lazily imports" if lazy else "imports"
                found.append(f"{module.where(node)}: {module.name} {how} {name}")
    return found


def no_violations(found: list[str]) -> None:
    if found:
        pytest.fail("layer rule broken (see ARCHITECTURE.md):\n  " + "\n  ".join(found),
                    pytrace=False)


def test_modules_were_found() -> None:
    layers = {m.layer for m in MODULES}
    assert {"address", "errors", "transport", "trace"} <= layers


def test_errors_imports_stdlib_only() -> None:
    no_violations(violations("errors", set(), set()))


def test_trace_imports_stdlib_only() -> None:
    """Importing trunkline.trace costs nothing beyond the stdlib. Optional exporters (e.g.
    OpenTelemetry) import their extra, and raise trunkline.errors, only when called."""
    no_violations(violations("trace", {"trace"}, set(), lazy_trunkline=frozenset({"errors"}),
                             lazy_foreign=True))


def test_address_imports_stdlib_and_errors_only() -> None:
    no_violations(violations("address", {"address", "errors"}, set()))


# websockets' sans-I/O core; its asyncio/threading/legacy front ends do I/O.
WEBSOCKETS_SANS_IO = {"websockets.protocol", "websockets.server", "websockets.client",
                      "websockets.frames", "websockets.http11", "websockets.datastructures",
                      "websockets.exceptions", "websockets.extensions", "websockets.headers",
                      "websockets.typing", "websockets.uri", "websockets.streams",
                      "websockets.utils", "websockets.version"}


def test_protocol_is_sans_io() -> None:
    no_violations(violations("protocol", {"protocol", "address", "errors", "trace"},
                      {"httptools"} | WEBSOCKETS_SANS_IO,
                      banned_stdlib=frozenset({"asyncio", "socket", "selectors", "ssl",
                                               "subprocess", "threading"})))


def test_transport_does_not_reach_up() -> None:
    no_violations(violations("transport", {"transport", "address", "errors", "trace"},
                      {"uvloop"}))


def test_loop_imports_stdlib_only() -> None:
    """_loop/ is the private event-loop machinery: the stdlib (and uvloop, lazily, to run
    on it), nothing from trunkline outside itself."""
    no_violations(violations("_loop", {"_loop"}, set(), lazy_foreign=True))


def test_host_sits_on_transport() -> None:
    """The service host is library plumbing every server composes: it may not know any
    server (aio/, server/, relay) above it; they hand it endpoints and connections."""
    no_violations(violations("host", {"host", "transport", "_loop", "trace", "address",
                                      "errors"}, set()))


def test_workers_sit_beside_the_host() -> None:
    """The worker supervisor runs any server it is given (a start function): like the
    host, it may not know aio/, server/ or anything above."""
    no_violations(violations("workers", {"workers", "host", "transport", "_loop", "trace",
                                         "address", "errors"}, set()))


def test_aio_sits_on_transport_and_protocol() -> None:
    no_violations(violations("aio", {"aio", "host", "transport", "protocol", "_loop", "trace",
                                     "address", "errors", "registry"}, set()))


# The tool side: what the CLI, benchmarks, tour and demo apps need, never the library's.
TOOLS = {"cli", "bench", "tour", "apps", "sockmap", "dashboard"}
LIBRARY = {"", "__main__", "errors", "address", "resolve", "_loop", "protocol", "transport",
           "aio", "host", "workers", "server", "client", "relay", "registry", "trace"}
# trace/ modules that render events; the trace package root holds events and sinks only.
TRACE_RENDERERS = {f"trunkline.trace.{name}" for name in
                   ("summary", "timeline", "mermaid", "html", "writeout", "otel", "render")}


def test_library_never_imports_tools_at_module_level() -> None:
    found = []
    for module in MODULES:
        if module.layer not in LIBRARY or module.name == "trunkline.__main__":
            continue
        for name, node, lazy in imports(module):
            if not lazy and layer_of(name) in TOOLS:
                found.append(f"{module.where(node)}: {module.name} imports {name}")
    no_violations(found)


def test_every_package_is_library_or_tool() -> None:
    """A new package must be placed on one side (and get its rules above)."""
    assert {m.layer for m in MODULES} <= LIBRARY | TOOLS


def test_import_trunkline_loads_no_tools_nor_renderers() -> None:
    code = ("import sys, trunkline; "
            "print(sorted(m for m in sys.modules if m.startswith('trunkline')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    loaded = set(ast.literal_eval(out.stdout))
    assert {"trunkline.aio.stream", "trunkline.trace.events"} <= loaded  # it sees the imports
    assert sorted(m for m in loaded if layer_of(m) in TOOLS or m in TRACE_RENDERERS) == []


# --------------------------------------------------------------------------- one error tree

ERROR_MODULES = {"trunkline.errors", "trunkline.client.errors"}


def test_library_errors_live_in_the_error_modules() -> None:
    """Every public error class of the library is in errors.py (or client/errors.py for the
    HTTP client's own), so the tree drawn there is the whole tree. Private control-flow
    exceptions (a leading underscore) may stay where they are raised and caught."""
    import trunkline.client.errors
    import trunkline.errors

    ours = {name for m in (trunkline.errors, trunkline.client.errors) for name in dir(m)
            if isinstance(getattr(m, name), type)
            and issubclass(getattr(m, name), BaseException)}
    roots = ours | {"Exception", "BaseException", "ValueError", "OSError", "TimeoutError"}
    found = []
    for module in MODULES:
        if module.layer not in LIBRARY or module.name in ERROR_MODULES:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")
                         for b in node.bases}
                if bases & roots:
                    found.append(f"{module.where(node)}: {node.name} belongs in errors.py")
    no_violations(found)


def test_registry_is_a_library_layer() -> None:
    no_violations(violations("registry", {"registry", "address", "errors", "trace", "_loop"},
                             {"psutil", "aetcd"}))


# --------------------------------------------------------------------------- print and exit

MAY_PRINT = {"cli", "bench"}


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


EXITS = {"sys.exit", "os._exit", "exit", "quit", "os.abort"}
#: A forked worker must end its own process (returning would run the supervisor's code on in
#: the child): its one ``os._exit``, and nothing else, is allowed there.
FORKED_CHILD_EXIT = ("trunkline.workers", "os._exit")


def test_only_cli_prints_or_exits() -> None:
    found = []
    for module in MODULES:
        if module.layer in MAY_PRINT or module.name == "trunkline.__main__":
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Call):
                name = _call_name(node)
                if (module.name, name) == FORKED_CHILD_EXIT:
                    continue
                if name == "print" or name in EXITS:
                    found.append(f"{module.where(node)}: {name}()")
            elif isinstance(node, ast.Raise) and node.exc is not None:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                    found.append(f"{module.where(node)}: raise SystemExit")
    no_violations(found)


# --------------------------------------------------------------------------- event-loop tricks

#: asyncio's private names: Future and Task internals, the current-task machinery, the C
#: accelerator module, the event loop's own internals. Only _loop/ may use them (the one
#: place to fix when asyncio changes). Generic names our own classes use as well (``_state``,
#: ``_loop``, ``_ready``, ``_coro``, ``_result``, ``_step``) are left out: a hit on them
#: would say nothing.
ASYNCIO_PRIVATE = frozenset({
    "_asyncio", "_callbacks", "_fut_waiter", "_must_cancel", "_source_traceback",
    "_log_traceback", "_cancel_message",
    "_enter_task", "_leave_task", "_register_task", "_unregister_task", "_swap_current_task",
    "_register_eager_task", "_unregister_eager_task", "_current_tasks", "_all_tasks",
    "_scheduled_tasks", "_eager_tasks", "_get_running_loop", "_set_running_loop",
    "_PyFuture", "_CFuture", "_PyTask", "_CTask", "_run_once", "_scheduled", "_selector",
    "_stopping", "_thread_id", "_asyncgens", "_call_soon", "_add_callback",
})


def asyncio_private_uses(module: Module) -> list[str]:
    """Where ``module`` names one of ``ASYNCIO_PRIVATE``: as an attribute, a string
    (``getattr(asyncio.tasks, "_enter_task")``) or in an import. (A bare name is our own: a
    function of ours may be called ``_run_once``; an imported one is caught at its import.)"""
    found = []
    for node in ast.walk(module.tree):
        names: list[str] = []
        if isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [part for alias in node.names for part in alias.name.split(".")]
            if isinstance(node, ast.ImportFrom) and node.module:
                names += node.module.split(".")
        found += [f"{module.where(node)}: {name}" for name in names if name in ASYNCIO_PRIVATE]
    return found


def test_asyncio_private_names_only_in_loop() -> None:
    found = []
    for module in MODULES:
        if module.layer != "_loop":
            found += asyncio_private_uses(module)
    no_violations(found)


def test_loop_is_where_the_tricks_are() -> None:
    """The check above looks for what _loop/ really uses (else it guards nothing)."""
    used = {hit.rsplit(": ", 1)[1] for module in MODULES if module.layer == "_loop"
            for hit in asyncio_private_uses(module)}
    assert {"_callbacks", "_enter_task", "_leave_task"} <= used


# --------------------------------------------------------------------------- the checker itself


def _module(name: str, source: str, package: bool = False) -> Module:
    path = PACKAGE_DIR / (name.split(".", 1)[1].replace(".", "/")
                          + ("/__init__.py" if package else ".py"))
    return Module(name, path, ast.parse(source))


@pytest.mark.parametrize(("name", "source", "package", "expected"), [
    ("trunkline.transport.tcp", "from ..address import X", False, ["trunkline.address"]),
    ("trunkline.transport", "from . import fd, tcp", True,
     ["trunkline.transport.fd", "trunkline.transport.tcp"]),
    ("trunkline.protocol.http", "from .h1 import P", False, ["trunkline.protocol.h1"]),
    ("trunkline.protocol.http", "import asyncio.events", False, ["asyncio.events"]),
    ("trunkline.api", "from .stream import S", False, ["trunkline.stream"]),
])
def test_import_resolution(name: str, source: str, package: bool, expected: list[str]) -> None:
    assert [n for n, _, _ in imports(_module(name, source, package))] == expected


def test_lazy_imports_are_told_apart() -> None:
    source = ("import json\nif TYPE_CHECKING:\n    import otel\n"
              "def f():\n    import extra\n")
    found = imports(_module("trunkline.trace.x", source))
    assert [(n, lazy) for n, _, lazy in found] == [("json", False), ("otel", True),
                                                   ("extra", True)]


@pytest.mark.parametrize("source", [
    "w = waiter._callbacks",
    "from asyncio.tasks import _enter_task",
    "enter = getattr(asyncio.tasks, '_enter_task')",
    "import _asyncio",
    "from _asyncio import Future",
    "asyncio.tasks._leave_task(loop, task)",
    "loop._run_once()",
])
def test_asyncio_private_detection(source: str) -> None:
    assert asyncio_private_uses(_module("trunkline.aio.x", source))


def test_own_private_names_are_not_asyncio_private() -> None:
    source = ("self._state = 1\nself._loop = loop\nself._coro = coro\n"
              "from .._loop.resume import resume_now\n"
              "def _run_once():\n    pass\n_run_once()\n")
    assert asyncio_private_uses(_module("trunkline.aio.x", source)) == []


def test_call_detection() -> None:
    tree = ast.parse("print('x')\nsys.exit(1)\nlog.print('fine')\nsink = print\n")
    calls = [_call_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [c for c in calls if c == "print" or c in EXITS] == ["print", "sys.exit"]
