"""``TraceFolder``: trace files as the writers leave them (``JsonLinesSink`` lines appended
while read, a server restarted onto the same file, a client's ``--trace=json`` document,
text and Mermaid files, files replaced or removed)."""

from __future__ import annotations

import time
from pathlib import Path

from trunkline.dashboard.traces import TraceFolder
from trunkline.trace import JsonLinesSink, Step, Tracer
from trunkline.trace.timeline import render_json


def server_connection(tracer: Tracer, peer: str, target: str, trace_id: str | None = None
                      ) -> int:
    conn = tracer.new_connection()
    now = time.monotonic_ns()
    tracer.record(Step.ACCEPT, "server", now, conn, transport="tcp", local="127.0.0.1:8000",
                  peer=peer)
    detail = {"trace_id": trace_id} if trace_id else {}
    tracer.record(Step.REQUEST_HEADERS, "server", now, conn, method="GET", target=target,
                  **detail)
    tracer.record(Step.RESPONSE_DONE, "server", now, conn, status=200)
    tracer.record(Step.CLOSE, "server", now, conn, by="client")
    return conn


def titles(folder: TraceFolder) -> list[str]:
    return [t["title"] for t in folder.listing()["traces"]]


def test_lines_are_read_as_they_are_appended(tmp_path: Path) -> None:
    folder = TraceFolder(tmp_path)
    assert folder.scan() is False and titles(folder) == []
    path = tmp_path / "server.jsonl"
    with JsonLinesSink(path) as sink:
        tracer = Tracer(sink, keep=False)
        server_connection(tracer, "127.0.0.1:50001", "/first")
        assert folder.scan() is True
        assert titles(folder) == ["GET /first"]
        assert folder.scan() is False  # nothing new
        with path.open("a") as f:
            f.write('{"step": "accept", "side": "ser')  # a line being written
        assert folder.scan() is False
        with path.open("a") as f:
            f.write('ver", "start_ns": 1, "end_ns": 2, "conn": 99}\nnot json\n')
        folder.scan()
        assert len(folder.entries) == 2  # the finished line counted, the junk skipped
        server_connection(tracer, "127.0.0.1:50002", "/second")
        folder.scan()
        assert titles(folder)[0] == "GET /second"
    # a restarted server numbers its connections from 1 again: a new trace, not a merge
    with JsonLinesSink(path) as sink:
        server_connection(Tracer(sink, keep=False), "127.0.0.1:50003", "/after-restart")
    folder.scan()
    listed = folder.listing()["traces"]
    assert listed[0]["title"] == "GET /after-restart" and listed[0]["events_count"] == 4
    assert {"GET /first", "GET /second"} <= {t["title"] for t in listed}


def test_replaced_and_removed_files(tmp_path: Path) -> None:
    folder = TraceFolder(tmp_path)
    path = tmp_path / "server.jsonl"
    with JsonLinesSink(path) as sink:
        server_connection(Tracer(sink, keep=False), "127.0.0.1:50001", "/old")
    folder.scan()
    path.unlink()
    with JsonLinesSink(path) as sink:  # a new file under the old name: read from its start
        # (a file of the same size written within the same clock tick looks unchanged)
        server_connection(Tracer(sink, keep=False), "127.0.0.1:50002", "/newer")
    assert folder.scan() is True
    assert titles(folder) == ["GET /newer"]
    path.unlink()
    assert folder.scan() is True and titles(folder) == []


def test_client_document_folds_in_the_server_side_by_trace_id(tmp_path: Path) -> None:
    client = Tracer()
    now = time.monotonic_ns()
    client.record(Step.CONNECT, "client", now, 1, local="127.0.0.1:50009",
                  peer="127.0.0.1:8000")
    client.record(Step.REQUEST_HEADERS, "client", now, 1, method="GET", target="/joined",
                  trace_id=client.trace_id)
    client.record(Step.RESPONSE_DONE, "client", now, 1, status=200)
    (tmp_path / "call.json").write_text(render_json(client.events, trace_id=client.trace_id))
    with JsonLinesSink(tmp_path / "server.jsonl") as sink:
        server = Tracer(sink, keep=False)
        # the peer differs (behind a proxy, say): only the trace id ties them
        server_connection(server, "10.0.0.9:40000", "/joined", trace_id=client.trace_id)
        server_connection(server, "127.0.0.1:50100", "/someone-else")
    folder = TraceFolder(tmp_path)
    folder.scan()
    listed = {t["title"]: t for t in folder.listing()["traces"]}
    assert set(listed) == {"GET /joined", "GET /someone-else"}
    joined = listed["GET /joined"]
    assert joined["side"] == "client+server" and joined["file"] == "call.json"
    assert joined["trace_id"] == client.trace_id
    detail = folder.detail(joined["id"])
    assert detail is not None
    assert [e["side"] for e in detail["events"]].count("server") == 4
    assert "total:" in detail["timeline"]


def test_text_and_mermaid_files_are_shown_as_written(tmp_path: Path) -> None:
    (tmp_path / "call.txt").write_text("tcp 127.0.0.1:1 -> 127.0.0.1:2\n\ntimeline here\n")
    tour = tmp_path / "tour-run"
    tour.mkdir()
    (tour / "unix.mmd").write_text("sequenceDiagram\n    A->>B: hi\n")
    (tour / "trace.html").write_text("<html>not read</html>")
    (tmp_path / "registry.db").write_bytes(b"\0SQLite")
    folder = TraceFolder(tmp_path)
    folder.scan()
    listed = {t["file"]: t for t in folder.listing()["traces"]}
    assert set(listed) == {"call.txt", "tour-run/unix.mmd"}
    assert listed["call.txt"]["title"] == "tcp 127.0.0.1:1 -> 127.0.0.1:2"
    mermaid = folder.detail(listed["tour-run/unix.mmd"]["id"])
    assert mermaid is not None and mermaid["mermaid"].startswith("sequenceDiagram")


def test_other_json_is_not_a_trace_and_long_files_are_read_from_their_end(
        tmp_path: Path) -> None:
    (tmp_path / "pingpong.json").write_text('{"host": "a bench result", "rounds": 3}')
    big = tmp_path / "big.jsonl"
    with JsonLinesSink(big) as sink:
        tracer = Tracer(sink, keep=False)
        server_connection(tracer, "127.0.0.1:50001", "/oldest")
        with big.open("a") as f:  # 5 MiB of other lines in between
            f.write(("#" * 1023 + "\n") * 5 * 1024)
        server_connection(tracer, "127.0.0.1:50002", "/newest")
    folder = TraceFolder(tmp_path)
    for _ in range(6):  # the last 4 MiB, a MiB per look
        folder.scan()
    assert titles(folder) == ["GET /newest"]
    (tmp_path / "huge.json").write_text(" " * (5 * 1024 * 1024))
    folder.scan()
    assert folder.listing()["skipped_files"] == ["huge.json"]


def test_an_unreadable_directory_is_said(tmp_path: Path) -> None:
    folder = TraceFolder(tmp_path / "missing")
    assert folder.scan() is False
    assert "cannot read" in (folder.listing()["error"] or "")
