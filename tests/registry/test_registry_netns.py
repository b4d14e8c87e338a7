"""The ranking for real callers on two "hosts" (network namespaces joined by a veth pair on
198.18.0.0/24, see netns.py) sharing one etcd that runs in host A: a caller in host A is
given the abstract name / Unix path, a caller in host B TCP on A's veth address, and both
reach the service through what they were given."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry.etcd_cluster import ETCD, EtcdCluster
from tests.registry.netns import A_ADDRESS, NamespaceError, TwoHosts
from tests.registry.workers import Worker
from tests.support.cli_helpers import TRUNKLINE, Service


@pytest.fixture(scope="module")
def hosts() -> Iterator[TwoHosts]:
    try:
        made = TwoHosts()
    except NamespaceError as exc:
        pytest.skip(f"cannot make network namespaces here: {exc}")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def etcd_in_a(hosts: TwoHosts) -> Iterator[EtcdCluster]:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian package etcd-server; .ci/run installs it)")
    # a fresh namespace has no other listener: the standard ports are free there
    cluster = EtcdCluster(1, host=A_ADDRESS, prefix=hosts.in_a, ports=[(2379, 2380)])
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.mark.timeout(120)
def test_same_host_gets_local_sockets_other_host_gets_tcp(hosts: TwoHosts,
                                                          etcd_in_a: EtcdCluster,
                                                          short_tmp: Path) -> None:
    url = etcd_in_a.url()
    with Worker(["serve", url, "users", str(short_tmp)], prefix=hosts.in_a) as service:
        record = json.loads(service.line(r"registered (.*)", timeout=60).group(1))
        urls = record["urls"]
        port = urls[-1].rsplit(":", 1)[1]
        # 0.0.0.0 was registered as host A's interface addresses: loopback and the veth
        assert f"tcp://127.0.0.1:{port}" in urls and f"tcp://{A_ADDRESS}:{port}" in urls

        with Worker(["resolve", url, "users"], prefix=hosts.in_a) as caller_a:
            a = json.loads(caller_a.line(r"^\{", timeout=60).string)
        with Worker(["resolve", url, "users"], prefix=hosts.in_b) as caller_b:
            b = json.loads(caller_b.line(r"^\{", timeout=60).string)

    service_host = record["host"]
    assert a["host"]["net_ns"] == service_host["net_ns"]
    assert a["host"]["mnt_ns"] == service_host["mnt_ns"]
    assert b["host"]["net_ns"] != service_host["net_ns"]
    assert b["host"]["mnt_ns"] != service_host["mnt_ns"]

    # host A: abstract name, Unix path, loopback TCP, then its own veth address
    assert [c["kind"] for c in a["candidates"]] == ["abstract", "unix", "tcp", "tcp"]
    assert a["candidates"][0]["reason"] == "same network namespace: abstract name reachable"
    assert a["candidates"][1]["reason"] == "same mount namespace: Unix path reachable"
    assert a["candidates"][2]["url"] == f"tcp://127.0.0.1:{port}"
    assert a["echo"] == "ping"

    # host B: only TCP on A's veth address, with everything else skipped and why
    assert [c["url"] for c in b["candidates"]] == [f"tcp://{A_ADDRESS}:{port}"]
    assert b["candidates"][0]["reason"] == \
        "other host: TCP on 198.18.0.0/24, a network this caller is on"
    skipped = {s["url"]: s["reason"] for s in b["skipped"]}
    assert skipped[f"tcp://127.0.0.1:{port}"] == "other host: loopback skipped"
    assert skipped[urls[0]] == "other mount namespace: Unix path skipped"
    assert skipped[urls[1]] == "other network namespace: abstract name skipped"
    assert b["echo"] == "ping"  # the call crossed the veth pair


@pytest.mark.timeout(120)
def test_calls_by_name_from_both_hosts(hosts: TwoHosts, etcd_in_a: EtcdCluster,
                                       short_tmp: Path) -> None:
    """``serve --name`` in host A; ``call http+svc://`` from host A goes over the Unix
    socket, from host B over TCP to A's veth address; ``connect svc://`` from B too."""
    url = etcd_in_a.url()
    in_a = [*hosts.in_a, *TRUNKLINE]
    in_b = [*hosts.in_b, *TRUNKLINE]
    sock = short_tmp / "users.sock"
    with Service(["serve", "echo", "--on", f"unix://{sock}", "--on", "tcp://0.0.0.0:0",
                  "--name", "users", "--registry", url], command=in_a) as service:
        service.wait_for_line(r"^registered users ", timeout=60)
        service.wait_ready(2, timeout=60)
        fmt = "%{remote_ip} %{http_code}"
        from_a = subprocess.run([*in_a, "call", "http+svc://users/a", "--registry", url,
                                 "-o", "/dev/null", "-w", fmt, "--trace=json"],
                                capture_output=True, timeout=60, check=False)
        assert from_a.returncode == 0, from_a.stderr.decode()
        assert from_a.stdout.decode() == f"{sock} 200"
        discover = json.loads(from_a.stderr)["summary"]["discover"]
        assert discover["reason"] == "same mount namespace: Unix path reachable"

        from_b = subprocess.run([*in_b, "call", "http+svc://users/b", "--registry", url,
                                 "-o", "/dev/null", "-w", fmt, "--trace=json"],
                                capture_output=True, timeout=60, check=False)
        assert from_b.returncode == 0, from_b.stderr.decode()
        assert from_b.stdout.decode() == f"{A_ADDRESS} 200"
        discover = json.loads(from_b.stderr)["summary"]["discover"]
        assert discover["reason"] == "other host: TCP on 198.18.0.0/24, a network this " \
                                     "caller is on"

        raw = subprocess.run([*in_b, "connect", "svc://users", "--registry", url],
                             input=b"over the veth", capture_output=True, timeout=60,
                             check=False)
        assert raw.returncode == 0, raw.stderr.decode()
        assert raw.stdout == b"over the veth"
        assert service.stop() == 0
