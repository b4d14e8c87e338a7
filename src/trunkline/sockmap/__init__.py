"""``trunkline map``: every socket and FIFO on this machine, who holds it, and who talks to whom.

A tool, not part of the library: ``import trunkline`` never imports it. ``build_map`` returns
plain data (``SocketMap``, frozen dataclasses with ``to_dict()``), which the renderers in
``sockmap.render`` turn into a table, Mermaid or an HTML page; the dashboard reads the same
data. Needs the ``map`` extra (psutil, pyroute2): ``pip install 'trunkline[map]'``.
"""

from .build import MapFilter, assemble, build_map, select
from .model import KINDS, Connection, End, Holder, OtherNamespace, Process, Socket, SocketMap
from .services import ServiceRecord, load_records, registered_services

__all__ = ["KINDS", "Connection", "End", "Holder", "MapFilter", "OtherNamespace", "Process",
           "ServiceRecord", "Socket", "SocketMap", "assemble", "build_map", "load_records",
           "registered_services", "select"]
