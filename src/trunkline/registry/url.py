"""Which registry: ``sqlite:///path``, ``etcd://host:port[,host:port...][/prefix]``, or the
default (``TRUNKLINE_REGISTRY``, else the SQLite file in the user's runtime directory).

Default file: ``$XDG_RUNTIME_DIR/trunkline/registry.db``; for root without it
``/run/trunkline/registry.db``; otherwise ``<tempdir>/trunkline-<uid>/registry.db`` in a
0700 directory that must belong to this user (another user's or an open one is refused:
whoever owns the directory could feed us records).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from ..address import format_hostport
from ..errors import AddressError, RegistryFileError
from .store import Store

ENV_VAR = "TRUNKLINE_REGISTRY"
ETCD_DEFAULT_PORT = 2379
DEFAULT_ETCD_PREFIX = "/trunkline"
EXAMPLES = "sqlite:///run/user/1000/trunkline/registry.db or etcd://10.0.0.5:2379,10.0.0.6:2379"
_PREFIX = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


@dataclass(frozen=True)
class RegistryURL:
    """A parsed registry URL: a SQLite file, or etcd members and a key prefix."""

    backend: str  # "sqlite" or "etcd"
    path: str = ""
    endpoints: tuple[tuple[str, int], ...] = ()
    prefix: str = DEFAULT_ETCD_PREFIX

    def __str__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite://{self.path}"
        members = ",".join(format_hostport(h, p) for h, p in self.endpoints)
        suffix = "" if self.prefix == DEFAULT_ETCD_PREFIX else self.prefix
        return f"etcd://{members}{suffix}"


def parse_registry_url(url: str) -> RegistryURL:
    """Parse a registry URL; ``AddressError`` names the offending part and shows an example."""
    if not isinstance(url, str) or not url.strip():
        raise AddressError(str(url), "registry URL", "is empty", EXAMPLES)
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("sqlite", "etcd"):
        raise AddressError(url, f"scheme {scheme!r}" if sep else "scheme",
                           "must be sqlite:// or etcd://", EXAMPLES)
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/" or rest.endswith("/"):
            raise AddressError(url, f"path {rest!r}", "must be an absolute file path (three "
                               "slashes in all)", "sqlite:///tmp/trunkline/registry.db")
        if "\0" in rest:
            raise AddressError(url, "path", "contains a NUL byte",
                               "sqlite:///tmp/trunkline/registry.db")
        return RegistryURL("sqlite", path=os.path.normpath(rest))
    authority, slash, path = rest.partition("/")
    prefix = "/" + path.rstrip("/") if slash and path.strip("/") else DEFAULT_ETCD_PREFIX
    if not _PREFIX.match(prefix):
        raise AddressError(url, f"key prefix {prefix!r}", "must be /-separated names of "
                           "letters, digits, '.', '_' and '-'", "etcd://127.0.0.1:2379/staging")
    if not authority:
        raise AddressError(url, "etcd members", "are missing",
                           "etcd://127.0.0.1:2379,127.0.0.2:2379")
    endpoints = []
    for member in authority.split(","):
        endpoints.append(_parse_member(url, member))
    return RegistryURL("etcd", endpoints=tuple(endpoints), prefix=prefix)


def _parse_member(url: str, member: str) -> tuple[str, int]:
    example = "etcd://127.0.0.1:2379,127.0.0.2:2379"
    if not member:
        raise AddressError(url, "etcd member", "is empty (a stray ',')", example)
    if member.startswith("["):
        host, _, tail = member[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise AddressError(url, f"member {member!r}", "must be [ipv6]:port", example)
    elif member.count(":") > 1:
        raise AddressError(url, f"member {member!r}", "is IPv6 and must be in brackets",
                           "etcd://[::1]:2379")
    else:
        host, _, port_text = member.partition(":")
    if not host or not re.match(r"^[A-Za-z0-9._:-]+$", host):
        raise AddressError(url, f"host {host!r}", "is not a host name or IP address", example)
    if not port_text:
        return host, ETCD_DEFAULT_PORT
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise AddressError(url, f"port {port_text!r}", "is not a number from 1 to 65535",
                           example)
    return host, int(port_text)


def default_registry_path(env: Mapping[str, str] | None = None, uid: int | None = None) -> str:
    """The default SQLite file for this user (see the module docstring)."""
    env = os.environ if env is None else env
    uid = os.geteuid() if uid is None else uid
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "trunkline", "registry.db")
    if uid == 0:
        return "/run/trunkline/registry.db"
    return os.path.join(tempfile.gettempdir(), f"trunkline-{uid}", "registry.db")


def registry_url(url: str | None = None, env: Mapping[str, str] | None = None) -> RegistryURL:
    """``url``, else ``$TRUNKLINE_REGISTRY``, else the default SQLite file."""
    env = os.environ if env is None else env
    text = url or env.get(ENV_VAR, "").strip()
    if text:
        return parse_registry_url(text)
    return RegistryURL("sqlite", path=default_registry_path(env))


def private_directory(path: str) -> None:
    """Make ``path`` (mode 0700) if missing; refuse one another user owns or others can
    write to."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise RegistryFileError(path, f"directory cannot be made ({exc.strerror})",
                                f"create it, or set {ENV_VAR}=sqlite:///path/registry.db"
                                ) from exc
    if not stat.S_ISDIR(info.st_mode):
        raise RegistryFileError(path, "is not a directory",
                                f"remove it, or set {ENV_VAR}=sqlite:///path/registry.db")
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise RegistryFileError(path, f"directory belongs to uid {info.st_uid} with mode "
                                f"{stat.S_IMODE(info.st_mode):o}; it must be this user's "
                                f"(uid {os.geteuid()}) and not writable by others",
                                f"remove it, or set {ENV_VAR}=sqlite:///path/registry.db")


def open_registry(url: str | RegistryURL | None = None, **options: float) -> Store:
    """A store for ``url`` (see ``registry_url``). Nothing is contacted yet: the first
    operation opens the file or connects to etcd, and raises if it cannot."""
    where = url if isinstance(url, RegistryURL) else registry_url(url)
    if where.backend == "sqlite":
        from .sqlite import SqliteStore

        if where.path == default_registry_path():
            private_directory(os.path.dirname(where.path))  # the default place: we own it
        return SqliteStore(where.path, **options)
    from .etcd import EtcdStore

    return EtcdStore(list(where.endpoints), prefix=where.prefix, **options)
