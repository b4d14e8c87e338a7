"""Every error trunkline raises, under one root.

    TrunklineError
    ├── AddressError (ValueError)    a URL that does not parse; names the part, shows an example
    │   └── PathTooLongError         a Unix/FIFO path over the kernel's 107-byte limit
    ├── UnsupportedError             the socket kind cannot do what was asked (half-close on UDP)
    ├── TransportError (OSError)     the kernel said no
    │   ├── ConnectError             could not connect (refused, unreachable, no such socket)
    │   ├── AddressInUseError        a live server already owns that address; we never steal it
    │   ├── NotASocketError          a non-socket file sits at a socket path; we never remove it
    │   ├── PeerNotAllowedError      the peer's uid/gid is not on the server's admit list
    │   ├── DatagramTooLargeError    a datagram over the socket kind's size limit
    │   └── HandshakeError           a FIFO or TLS handshake that did not complete
    ├── ResolveError (OSError)       a name that did not resolve (DNS or the service registry)
    ├── RegistryError                the service registry cannot do what was asked
    │   ├── RegistryUnavailableError     the backend is unreachable and nothing is cached
    │   ├── RegistryFileError            the registry file is damaged or cannot be written
    │   ├── DuplicateInstanceError       a live instance already holds that instance id
    │   └── InvalidRecordError (ValueError)  a record that cannot be registered (bad ttl, ...)
    ├── TrunklineTimeoutError (TimeoutError)
    └── ProtocolError                the peer broke the wire protocol (HTTP, WebSocket)

Subclasses for the HTTP client (timeouts per phase, server disconnects, certificate
failures) live in ``trunkline.client.exceptions``, each under one of the classes above.

Foreign errors (OSError from the kernel, ssl errors, asyncio timeouts) are translated at the
edge where they happen, so callers only ever catch these.
"""

from __future__ import annotations


class TrunklineError(Exception):
    """Root of every error trunkline raises."""


class AddressError(TrunklineError, ValueError):
    """An endpoint URL that does not parse."""

    def __init__(self, url: str, part: str, problem: str, example: str) -> None:
        self.url = url
        self.part = part
        self.problem = problem
        self.example = example
        super().__init__(f"bad address {url!r}: {part} {problem} (example: {example})")


class PathTooLongError(AddressError):
    """A socket path longer than the kernel accepts (sun_path is 108 bytes with the NUL)."""


class UnsupportedError(TrunklineError):
    """The socket kind cannot do what was asked."""


class TransportError(TrunklineError, OSError):
    """The kernel refused an operation on a socket or pipe."""


class ConnectError(TransportError):
    """Could not reach the peer."""


class AddressInUseError(TransportError):
    """A live server owns the address already."""


class NotASocketError(TransportError):
    """A file that is not a socket sits where a socket was to be bound."""


class PeerNotAllowedError(TransportError):
    """The peer's credentials are not admitted by the server."""


class DatagramTooLargeError(TransportError):
    """A datagram larger than the socket kind can carry."""


class HandshakeError(TransportError):
    """A FIFO rendezvous or TLS handshake did not complete."""


class ResolveError(TrunklineError, OSError):
    """A name that did not resolve."""


class RegistryError(TrunklineError):
    """The service registry (SQLite file or etcd) cannot do what was asked."""


class RegistryUnavailableError(RegistryError):
    """The registry backend cannot be reached, and there is no cached view to serve."""


class RegistryFileError(RegistryError):
    """The registry file is damaged or cannot be written; names the file and what to do."""

    def __init__(self, path: str, problem: str, remedy: str) -> None:
        self.path = path
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"registry file {path}: {problem}; {remedy}")


class DuplicateInstanceError(RegistryError):
    """A live instance of the service already holds the instance id."""


class InvalidRecordError(RegistryError, ValueError):
    """An instance record that cannot be registered (protocol, ttl, metadata, id)."""


class TrunklineTimeoutError(TrunklineError, TimeoutError):
    """An operation ran past its deadline."""


class ProtocolError(TrunklineError):
    """The peer broke the wire protocol."""
