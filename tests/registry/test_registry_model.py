"""Records and their rules: names, URLs, protocol, TTL, metadata, ids; the stored form;
host identity; wildcard expansion; registry URLs."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trunkline.errors import AddressError, InvalidRecordError
from trunkline.registry import HostIdentity, Instance, make_instance, parse_registry_url
from trunkline.registry.hostid import process_alive, process_start_ticks
from trunkline.registry.interfaces import expand_wildcard, local_interfaces
from trunkline.registry.model import registrable


@pytest.mark.parametrize(("name", "fragment"), [
    ("Users", "'users' would do"),
    ("user_api", "'user-api' would do"),
    ("-users", "must be a DNS label"),
    ("users-", "must be a DNS label"),
    ("", "must be a DNS label"),
    ("a" * 64, "1 to 63"),
    ("users.v2", "'users-v2' would do"),
    ("us ers", "must be a DNS label"),
])
def test_bad_service_names_say_the_rule_and_show_an_example(name: str, fragment: str) -> None:
    with pytest.raises(AddressError) as caught:
        make_instance(name, ["unix:@x"])
    message = str(caught.value)
    assert fragment in message
    assert "example: svc://users or svc://billing-v2" in message


@pytest.mark.parametrize(("urls", "error", "fragment"), [
    (["tcp://127.0.0.1:0"], AddressError, "port 0"),
    (["svc://users"], AddressError, "is a name, not a socket"),
    (["fd://3"], AddressError, "means nothing to another process"),
    (["gopher://x:1"], AddressError, "scheme 'gopher'"),
    ([], InvalidRecordError, "no address to register"),
])
def test_unregistrable_urls(urls: list[str], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        make_instance("users", urls)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"protocol": "grpc"}, "protocol 'grpc' is not one of raw, http, websocket"),
    ({"ttl": 0.5}, "ttl 0.5 must be"),
    ({"ttl": float("nan")}, "ttl nan must be"),
    ({"ttl": True}, "ttl True must be"),
    ({"meta": {"": "x"}}, "metadata key ''"),
    ({"meta": {"v": 1}}, "metadata value of 'v'"),
    ({"instance_id": "a/b"}, "instance id 'a/b'"),
])
def test_bad_records_are_refused(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidRecordError, match=fragment):
        make_instance("users", ["unix:@x"], **kwargs)  # type: ignore[arg-type]


def test_record_round_trips_through_its_stored_form() -> None:
    instance = make_instance("users", ["unix:///run/u.sock", "unix:@u", "fifo:///tmp/f",
                                       "tls://10.1.2.3:8443", "udp://127.0.0.1:9"],
                             protocol="websocket", meta={"version": "1.2", "zone": "a"},
                             ttl=4, instance_id="users-1")
    text = instance.to_json(owner="abc")
    back, owner = Instance.from_json(text, expires=123.0)
    assert owner == "abc"
    assert back == instance.with_expiry(123.0)
    assert back.pid == os.getpid() and back.pid_start == process_start_ticks(os.getpid())
    assert back.host == HostIdentity.current()


@pytest.mark.parametrize("text", [
    b"\xff", "[]", '{"version": 1}', '{"version": 99, "service": "x"}',
    Instance.__name__,
])
def test_unreadable_records_are_value_errors(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        Instance.from_json(text)


def test_host_identity_reads_proc() -> None:
    here = HostIdentity.current()
    assert here.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert here.net_ns == os.stat("/proc/self/ns/net").st_ino
    assert here.mnt_ns == os.stat("/proc/self/ns/mnt").st_ino
    assert here.same_network(here) and here.same_filesystem(here) and here.same_pids(here)
    unknown = HostIdentity("h", "", 0, 0, 0)
    assert not unknown.same_network(unknown)  # nothing known: never "the same host"
    assert HostIdentity.from_dict(here.to_dict()) == here


def test_process_alive_tells_a_reused_pid_apart() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        start = process_start_ticks(child.pid)
        assert start is not None
        assert process_alive(child.pid, start)
        assert not process_alive(child.pid, start + 1)  # same pid, another process
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait()
    assert not process_alive(child.pid, start)


def test_wildcards_are_registered_as_interface_addresses() -> None:
    interfaces = [ipaddress.ip_interface("127.0.0.1/8"),
                  ipaddress.ip_interface("198.18.0.1/24"),
                  ipaddress.ip_interface("2001:db8::1/64")]
    four = expand_wildcard(registrable("tcp://0.0.0.0:8000"), interfaces)
    assert [str(a.host) for a in four] == ["127.0.0.1", "198.18.0.1"]  # type: ignore[union-attr]
    six = expand_wildcard(registrable("tls://[::]:8443"), interfaces)
    assert {a.host for a in six} >= {"2001:db8::1"}  # type: ignore[union-attr]
    assert all(a.scheme == "tls" for a in six)
    instance = make_instance("users", ["tcp://0.0.0.0:8000", "unix:@u"])
    hosts = {ipaddress.ip_address(url.split("//")[1].rsplit(":", 1)[0])
             for url in instance.urls if url.startswith("tcp://")}
    assert hosts == {i.ip for i in local_interfaces() if i.version == 4}
    assert instance.urls[-1] == "unix:@u"


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///tmp/r.db", "sqlite:///tmp/r.db"),
    ("sqlite:///tmp/../tmp/r.db", "sqlite:///tmp/r.db"),
    ("etcd://10.0.0.5", "etcd://10.0.0.5:2379"),
    ("etcd://a:1,b:2", "etcd://a:1,b:2"),
    ("etcd://[::1]:2379/staging", "etcd://[::1]:2379/staging"),
    ("ETCD://h:1/", "etcd://h:1"),
])
def test_registry_urls(url: str, expected: str) -> None:
    assert str(parse_registry_url(url)) == expected


@pytest.mark.parametrize(("url", "fragment"), [
    ("", "is empty"), ("redis://x", "scheme 'redis'"), ("sqlite://rel.db", "absolute"),
    ("sqlite:///", "absolute"), ("/tmp/r.db", "scheme"), ("sqlite:///dir/", "absolute"),
])
def test_bad_registry_urls(url: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment) as caught:
        parse_registry_url(url)
    assert "example:" in str(caught.value)


def test_importing_trunkline_loads_no_backend() -> None:
    """SQLite, psutil and the etcd client (grpc) load when a registry is first used."""
    code = ("import sys, trunkline; print(sorted(m for m in ('sqlite3', 'psutil', 'aetcd', "
            "'grpc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
