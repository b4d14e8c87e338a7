"""The HTTP/1.1 client: ``Client``, its pool and connections, and the httpx transport.

    async with trunkline.Client() as client:
        response = await client.get("http+unix://%2Frun%2Fapp.sock/health")

``HttpxTransport`` (needs httpx) lets ``httpx.AsyncClient`` reach every address kind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import Client
from .errors import (
    CertificateVerifyError,
    ConnectTimeoutError,
    HTTPStatusError,
    PoolTimeoutError,
    ReadTimeoutError,
    ServerDisconnectedError,
    WriteTimeoutError,
)
from .models import Headers, Limits, Response, Timeout

if TYPE_CHECKING:
    from .httpx_transport import HttpxTransport


def __getattr__(name: str) -> Any:
    if name == "HttpxTransport":  # imported on first use: httpx is an optional dependency
        from .httpx_transport import HttpxTransport

        return HttpxTransport
    raise AttributeError(name)


__all__ = [
    "CertificateVerifyError", "Client", "ConnectTimeoutError", "HTTPStatusError", "Headers",
    "HttpxTransport", "Limits", "PoolTimeoutError", "ReadTimeoutError", "Response",
    "ServerDisconnectedError", "Timeout", "WriteTimeoutError",
]
