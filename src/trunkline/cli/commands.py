"""Registers every command module with the group (one import per command).

Each module attaches its command to ``main.cli`` when imported. Keep it one import per line,
in the order the commands should be listed; add a line for a new command, nothing else.
"""

# ruff: noqa: F401, I001
from . import serve
from . import connect
from . import relay
from . import tour
from . import call
from . import bench
from . import bench_http
from . import bench_net
from . import bench_byname
from . import ws
from . import map
from . import services
from . import registry
from . import dashboard
