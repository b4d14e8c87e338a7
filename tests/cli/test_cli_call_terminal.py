"""``trunkline call`` for a person at a terminal (a pty): JSON shown indented and coloured as
httpie shows it, plain when piped (byte for byte what curl writes), colour off with
``--no-color`` or ``NO_COLOR`` (every command takes ``--no-color``), and a progress meter
when the body goes to a file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.curl_peer import CURL, TRUNKLINE, curl_peer, needs_curl
from tests.support.pty_helpers import Terminal

ANSI_COLOR = re.compile(rb"\x1b\[[0-9;]*m")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def _shown(args: list[str], env: dict[str, str]) -> bytes:
    with Terminal([*TRUNKLINE, *args], env=env) as term:
        assert term.wait() == 0, bytes(term.output)
        return bytes(term.output)


def test_json_on_a_terminal_is_indented_and_coloured() -> None:
    with curl_peer() as p:
        shown = _shown([p.base + "/doc.json"], _env())
    assert ANSI_COLOR.search(shown)
    text = ANSI_COLOR.sub(b"", shown).replace(b"\r\n", b"\n")
    assert text == json.dumps({"name": "ada", "langs": ["en", "fr"], "n": 1},
                              indent=4).encode() + b"\n"


@pytest.mark.parametrize("how", ["NO_COLOR", "--no-color"])
def test_no_color_keeps_the_indent(how: str) -> None:
    with curl_peer() as p:
        if how == "NO_COLOR":
            shown = _shown([p.base + "/doc.json"], _env(NO_COLOR="1"))
        else:
            shown = _shown([p.base + "/doc.json", "--no-color"], _env())
    assert not ANSI_COLOR.search(shown)
    assert shown.replace(b"\r\n", b"\n").startswith(b'{\n    "name": "ada",\n')


@needs_curl
def test_piped_json_is_byte_for_byte_what_curl_writes() -> None:
    assert CURL is not None
    with curl_peer() as p:
        ours = subprocess.run([*TRUNKLINE, p.base + "/doc.json"], capture_output=True,
                              timeout=30, check=True)
        curl = subprocess.run([CURL, "-s", p.base + "/doc.json"], capture_output=True,
                              timeout=30, check=True)
    assert ours.stdout == curl.stdout and b"\n    " not in ours.stdout


def test_progress_meter_when_writing_a_file(tmp_path: Path) -> None:
    target = tmp_path / "blob.bin"
    with curl_peer() as p:
        url = p.base + "/files/blob.bin?size=3000000"
        shown = _shown([url, "-o", str(target)], _env())
        assert target.stat().st_size == 3_000_000
        assert re.search(rb"3\.0/3\.0 MB", shown), shown  # rich's DownloadColumn, at the end
        quiet = _shown([url, "-o", str(target), "-s"], _env())
        assert quiet == b""
        quiet = _shown([url, "-o", str(target), "--no-progress-meter"], _env())
        assert quiet == b""


def test_every_command_takes_no_color() -> None:
    for command in (["serve"], ["connect"], ["relay"], ["tour"], ["call"], ["ws"],
                    ["bench", "pingpong"], ["bench"], ["map"]):
        done = subprocess.run([sys.executable, "-m", "trunkline", *command, "--help"],
                              capture_output=True, timeout=30, check=True)
        assert b"--no-color" in done.stdout, command
