"""``Client.get/post/...`` take ``request``'s keyword arguments, typed: a misspelt one is a
TypeError at the call (nothing is sent) and an error mypy reports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trunkline
from trunkline.server import AppServer, load_app

VERBS = ["get", "head", "options", "delete", "post", "put", "patch"]


@pytest.mark.asyncio
async def test_every_verb_takes_the_request_options_and_refuses_others(
        short_tmp: Path) -> None:
    async with AppServer(load_app("echo"), f"unix://{short_tmp}/e.sock") as server:
        url = "http+unix://" + str(short_tmp / "e.sock").replace("/", "%2F") + "/x"
        async with trunkline.Client() as client:
            for verb in VERBS:
                call = getattr(client, verb)
                response = await call(url, params={"v": verb}, headers={"x-verb": verb},
                                      timeout=10)
                assert response.status_code == 200, verb
                with pytest.raises(TypeError, match="bogus"):
                    await call(url, bogus=1)
            async with client.stream("GET", url, params={"s": 1}) as response:
                assert b"s=1" in await response.aread()
            with pytest.raises(TypeError, match="bogus"):
                async with client.stream("GET", url, bogus=1):
                    raise AssertionError("not entered")
        assert server.urls


def test_mypy_names_a_misspelt_option(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent("""\
        import trunkline


        async def main(client: trunkline.Client) -> None:
            await client.get("http://x/", params={"a": 1}, timeout=3, json={"ok": True})
            await client.post("http://x/", bogus=1)
            async with client.stream("GET", "http://x/", tiemout=2):
                pass
        """))
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir",
                           str(tmp_path / "cache"), "--follow-imports=silent", str(snippet)],
                          capture_output=True, text=True, timeout=240, check=False)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 2, done.stdout + done.stderr
    assert 'snippet.py:6: error: Unexpected keyword argument "bogus" for "post"' in errors[0]
    assert 'snippet.py:7: error: Unexpected keyword argument "tiemout"' in errors[1]
