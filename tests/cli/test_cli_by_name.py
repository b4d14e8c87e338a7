"""Calling by name from the command line: ``connect svc://``, ``call http+svc://``,
``ws ws+svc://`` with ``--prefer`` and ``--registry``; no instance: exit 6 and why."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.support.cli_helpers import Service, run


@pytest.fixture
def users(sqlite_url: str) -> Iterator[list[str]]:
    """An echo service (bytes, HTTP, WebSocket) registered as 'users': its URLs."""
    with Service(["serve", "echo", "--on", f"unix:@tl-clibn-{os.getpid()}",
                  "--on", "tcp://127.0.0.1:0", "--name", "users",
                  "--registry", sqlite_url]) as server:
        server.wait_for_line(r"^registered users ")
        yield server.wait_ready(2)
        assert server.stop() == 0


def test_connect_by_name(sqlite_url: str, users: list[str]) -> None:
    result = run(["connect", "svc://users", "--registry", sqlite_url], input=b"hello")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hello"


def test_call_by_name_traced(sqlite_url: str, users: list[str]) -> None:
    result = run(["call", "http+svc://users/a?b=1", "--registry", sqlite_url,
                  "--trace=json"])
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout)["path"] == "/a"
    events = json.loads(result.stderr)["events"]
    discover = next(e for e in events if e["step"] == "discover")
    assert discover["detail"]["chosen"] == users[0]  # the abstract name
    assert discover["detail"]["backend"] == sqlite_url

    result = run(["call", "http+svc://users/", "--registry", sqlite_url, "--prefer", "tcp",
                  "-v"])
    assert result.returncode == 0, result.stderr.decode()
    assert f"chose {users[1]}: preferred (tcp)" in result.stderr.decode()


def test_ws_by_name(sqlite_url: str, users: list[str]) -> None:
    result = run(["ws", "ws+svc://users/chat", "--registry", sqlite_url, "--wait", "5"],
                 input=b"one\ntwo\n")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"one\ntwo\n"


@pytest.mark.parametrize("args", [
    ["connect", "svc://ghost"],
    ["call", "http+svc://ghost/"],
    ["ws", "ws+svc://ghost/"],
])
def test_no_instance_exits_6_and_says_why(args: list[str], sqlite_url: str) -> None:
    result = run([*args, "--registry", sqlite_url], input=b"")
    assert result.returncode == 6, result.stderr.decode()
    assert "service 'ghost': no live instance in " in result.stderr.decode()
    assert "trunkline services" in result.stderr.decode()


def test_name_options_without_a_name_are_usage_errors() -> None:
    result = run(["connect", "tcp://127.0.0.1:9", "--prefer", "tcp"])
    assert result.returncode == 2
    assert "are for svc://NAME" in result.stderr.decode()


def test_relay_refuses_a_service_name_with_the_way_out() -> None:
    result = run(["relay", "tcp://127.0.0.1:0", "svc://users"])
    assert result.returncode == 3
    assert "relay needs socket addresses, not a service name" in result.stderr.decode()
    assert "trunkline resolve users" in result.stderr.decode()
