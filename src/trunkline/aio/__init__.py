"""Connection objects over a transport, for asyncio code.

- ``stream``: ``Stream`` (read/write/half-close over any stream kind) and its protocol;
- ``datagram``: ``DatagramEndpoint``, ``open_datagram`` and ``bind_datagram``;
- ``datagram_server``: serving a datagram address, one handler call per datagram;
- ``websocket``: ``WebSocket``, one WebSocket connection for the caller, wrapping
  ``websocket_protocol.WebSocketProtocol`` (internal: state, reads, event-loop callbacks;
  ``websocket_writes``: its write half); the framing rules are in ``protocol.websocket``;
- ``servers``: ``connect``, and ``serve``/``Server``: stream and datagram handlers on any set
  of addresses.

The public names are re-exported by ``trunkline`` itself.
"""
