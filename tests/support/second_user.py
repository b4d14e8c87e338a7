"""Peers that run as a second local user (``nobody``), for tests of who a server admits.

CI runs as root, so a test can become another user. Two ways, for two needs:

- ``stdlib_as_nobody(code)``: ``setpriv --reuid nobody`` runs the base interpreter with only
  the standard library (``-I``). Enough for raw-socket peers, and independent of where the
  tree is (CI copies it into a 0700 temp dir that ``nobody`` cannot read).
- ``trunkline_as_nobody(args)``: a ``trunkline`` command that imports its code as root, then
  drops to ``nobody`` (setgroups, setgid, setuid: what setpriv does) before it runs. Every
  socket it opens carries nobody's credentials.
- ``needs_nobody_reads_tree``: for commands that import lazily as they go (``map``, ``bench``),
  so they must run as nobody from the start: nobody must be able to read this checkout and its
  venv. ``.ci/run`` makes its temp tree world-readable; a checkout under a 0700 home is not.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import sys

import pytest

NOBODY = pwd.getpwnam("nobody")
UID, GID = NOBODY.pw_uid, NOBODY.pw_gid

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a peer as a second user (CI runs as root)")

_DROP_THEN_RUN = f"""\
import os, sys
from trunkline.cli import commands, main  # every command, imported while still root
import trunkline.client, trunkline.client.client, trunkline.cli.call
os.setgroups([])
os.setgid({GID})
os.setuid({UID})
assert os.geteuid() == {UID} and os.getegid() == {GID}
main.cli(sys.argv[1:], prog_name="trunkline")
"""


def stdlib_as_nobody(code: str, *args: str) -> list[str]:
    """argv running ``code`` (standard library only) as nobody."""
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups",
            os.path.realpath(sys.executable), "-I", "-c", code, *args]


def trunkline_as_nobody(*args: str) -> list[str]:
    """argv running ``trunkline ARGS`` as nobody."""
    return [sys.executable, "-c", _DROP_THEN_RUN, *args]


def as_nobody(*argv: str) -> list[str]:
    """``argv`` run by setpriv as nobody, with no supplementary groups."""
    return ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups", *argv]


@functools.cache
def _nobody_reads_tree() -> bool:
    probe = as_nobody(sys.executable, "-c", "import trunkline.cli.main")
    return subprocess.run(probe, capture_output=True, timeout=60, cwd="/").returncode == 0


def needs_nobody_reads_tree() -> None:
    """Skip, saying why, unless nobody can import trunkline from this checkout and venv."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as nobody (CI runs as root)")
    if not _nobody_reads_tree():
        pytest.skip("nobody cannot read this checkout or its venv (a 0700 directory on the "
                    "path); .ci/run makes its tree world-readable for these tests")
