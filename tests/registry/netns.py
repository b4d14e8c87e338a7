"""Two "hosts" on one kernel: network namespaces joined by a veth pair on 198.18.0.0/24 (the
benchmarking range, RFC 2544), created here and always deleted.

- host A (198.18.0.1): processes enter only its network namespace (``nsenter --net``), so
  they share this process's filesystem view (mount namespace): Unix paths reach across;
- host B (198.18.0.2): ``ip netns exec``, which gives each process a network namespace and
  a mount namespace of its own: another host as far as sockets can tell.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence

A_ADDRESS, B_ADDRESS = "198.18.0.1", "198.18.0.2"


class NamespaceError(Exception):
    """Namespaces cannot be made here (not root, no ip/nsenter, no CAP_SYS_ADMIN)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20,
                            check=False)
    if result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class TwoHosts:
    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise NamespaceError("network namespaces need root (CI runs as root)")
        for tool in ("ip", "nsenter"):
            if shutil.which(tool) is None:
                raise NamespaceError(f"{tool} is not installed (iproute2, util-linux)")
        tag = secrets.token_hex(3)
        self.a, self.b = f"tl-registry-{tag}-a", f"tl-registry-{tag}-b"
        self._made: list[str] = []
        try:
            for name in (self.a, self.b):
                _ip("netns", "add", name)
                self._made.append(name)
            veth_a, veth_b = f"tlr{tag}a", f"tlr{tag}b"
            _ip("link", "add", veth_a, "netns", self.a, "type", "veth", "peer", "name", veth_b,
                "netns", self.b)
            for name, dev, address in ((self.a, veth_a, A_ADDRESS), (self.b, veth_b, B_ADDRESS)):
                _ip("-n", name, "addr", "add", f"{address}/24", "dev", dev)
                _ip("-n", name, "link", "set", dev, "up")
                _ip("-n", name, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    @property
    def in_a(self) -> Sequence[str]:
        return ["nsenter", f"--net=/run/netns/{self.a}", "--"]

    @property
    def in_b(self) -> Sequence[str]:
        return ["ip", "netns", "exec", self.b]

    def close(self) -> None:
        for name in reversed(self._made):  # the veth pair goes with its namespaces
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20,
                           check=False)
        self._made.clear()
