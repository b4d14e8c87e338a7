"""``trunkline dashboard`` as a user runs it: the URL printed, the page served, a Unix socket
behind a proxy, the loopback rule (a usage error without --allow-remote, a warning with it),
bad options, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.cli_helpers import TRUNKLINE, Service, run


@pytest.mark.timeout(60)
def test_default_serves_a_loopback_port_and_prints_the_page(tmp_path: Path) -> None:
    with Service(["dashboard", "--traces", str(tmp_path)]) as dashboard:
        [url] = dashboard.wait_ready()
        assert url.startswith("tcp://127.0.0.1:") and not url.endswith(":0")
        page = dashboard.wait_for_line(r"^dashboard: (http://\S+)").group(1)
        assert page == "http://" + url.removeprefix("tcp://") + "/"
        with urllib.request.urlopen(page, timeout=10) as response:
            assert response.status == 200 and b"trunkline dashboard" in response.read()
        with urllib.request.urlopen(page + "api/traces", timeout=10) as response:
            assert json.load(response)["directory"] == str(tmp_path)
        # a page still following a feed does not hold up the stop: it is told "going away"
        with connect(page.replace("http://", "ws://") + "ws/services",
                     open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["registry"].startswith("sqlite://")
            assert dashboard.stop() == 0
            # a view pushed before the stop may still be in flight: read past it to the close
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(100):
                    assert "instances" in json.loads(ws.recv(timeout=10))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert not any("Traceback" in line for line in dashboard.stderr)


@pytest.mark.timeout(60)
def test_unix_socket_behind_a_proxy(short_tmp: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is needed (CI installs it)")
    sock = short_tmp / "dash.sock"
    with Service(["dashboard", "--on", f"unix://{sock}", "--traces", str(short_tmp)]) as dash:
        assert dash.wait_ready() == [f"unix://{sock}"]
        dash.wait_for_line(r"^dashboard: unix://.*reverse proxy")
        assert sock.stat().st_mode & 0o777 == 0o600
        # a proxy names its own public host: no loopback Host check on a Unix socket
        out = subprocess.run([curl, "-sS", "--unix-socket", str(sock), "-H",
                              "Host: dash.example.org", "http://x/api/services"],
                             capture_output=True, timeout=20, check=True).stdout
        assert json.loads(out)["instances"] == []
        assert dash.stop() == 0
    assert not sock.exists()


def test_non_loopback_address_needs_allow_remote() -> None:
    for address in ("tcp://0.0.0.0:0", "tcp://[::]:0", "tcp://example.org:8600",
                    "tcp://198.18.0.1:0"):
        result = run(["dashboard", "--on", address])
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert "not a loopback address" in err and "--allow-remote" in err, err
        assert "listening on" not in err


@pytest.mark.timeout(60)
def test_allow_remote_serves_and_warns(tmp_path: Path) -> None:
    """In a network namespace of its own (only a loopback inside), so the wildcard bind
    reaches no real interface."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rn", "true"],
                                         capture_output=True).returncode != 0:
        pytest.skip("needs unshare -rn (user and network namespaces)")
    with Service(["dashboard", "--on", "tcp://0.0.0.0:0", "--allow-remote", "--traces",
                  str(tmp_path)], command=[unshare, "-rn", *TRUNKLINE]) as dashboard:
        [url] = dashboard.wait_ready()
        assert url.startswith("tcp://0.0.0.0:")
        warning = next(line for line in dashboard.stderr if line.startswith("warning:"))
        assert "not a loopback address" in warning and "0.0.0.0" in warning
        assert dashboard.stop() == 0


def test_bad_options_say_what_is_wrong(tmp_path: Path) -> None:
    result = run(["dashboard", "--on", "udp://127.0.0.1:0"])
    assert result.returncode == 3
    assert b"datagram address" in result.stderr
    result = run(["dashboard", "--bench", str(tmp_path / "missing")])
    assert result.returncode == 2
    assert b"does not exist" in result.stderr
    result = run(["dashboard", "--registry", "mysql://x"])
    assert result.returncode == 3
    assert b"sqlite://" in result.stderr


def test_help_lists_the_panels_and_the_loopback_rule() -> None:
    result = run(["dashboard", "--help"])
    assert result.returncode == 0
    text = result.stdout.decode()
    for words in ("--on URL", "--allow-remote", "--traces DIR", "--bench DIR", "--registry",
                  "Read-only", "Exit status"):
        assert words in text, words
