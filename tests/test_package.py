"""The package's face: README's library example run as written (with unique names), and a
plain ``import trunkline`` that reaches ``trunkline.relay``."""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def library_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Library\n"):]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Library section has a python example"
    return match.group(1)


@pytest.mark.asyncio
async def test_readme_library_example_runs_as_written(short_tmp: Path) -> None:
    code = library_example()
    name = f"tl-readme-{os.getpid()}-{short_tmp.name}"
    code = code.replace("unix:@app", f"unix:@{name}").replace("fifo:///tmp/app",
                                                               f"fifo://{short_tmp}/app")
    compiled = compile(code, "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        await eval(compiled, {"__name__": "readme"})  # noqa: S307 (our own README)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("b'hi' ") and lines[0].endswith(f"@{name}"), lines  # peer
    assert lines[1] == "b'relayed'"
    # the example's server stopped on the way out: its FIFO is gone
    assert not (short_tmp / "app").exists()


def test_trunkline_relay_after_a_plain_import() -> None:
    probe = ("import sys, trunkline\n"
             "assert 'trunkline.relay' not in sys.modules\n"
             "print(trunkline.relay.start_relay.__name__, "
             "trunkline.relay.start_websocket_relay.__name__)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["start_relay", "start_websocket_relay"]
