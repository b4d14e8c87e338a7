"""Hello-world requests per second with keep-alive: trunkline's HTTP server vs uvicorn and
granian, each started as its own command line.

Runs the same workload as ``trunkline bench http`` (the code lives in
``trunkline.bench.http``), with the same options:

    python benchmarks/http_server.py                       # tcp and unix, 1 and 2 workers
    python benchmarks/http_server.py --kinds tcp --workers 1 --rounds 5 --seconds 5
    python benchmarks/http_server.py --access-log off,on --workers 1 --plot http.png
    python benchmarks/http_server.py --servers trunkline-api,trunkline,uvicorn --workers 1

``trunkline-api`` is the library call (``serve_app`` from ``python -c``), what this script
measured before it became the CLI's face. Over TCP the load comes from ``wrk``, over a Unix
socket from ``h2load --h1 -B unix:PATH`` (Debian ``nghttp2-client``). One worker: the server
runs on CPU 0 and the load generator on CPU 1 (taskset); more: nothing pinned. See README.md
here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout

from trunkline.cli.bench_http import http_command  # noqa: E402

if __name__ == "__main__":
    http_command(prog_name="benchmarks/http_server.py")
