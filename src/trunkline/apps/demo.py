"""``demo``: the tour's small users API, in memory.

    GET  /users        200 [{"id": 1, "name": "ada"}, ...]
    POST /users        201 {"id": 3, "name": "..."}   body {"name": "..."}; Location header
    GET  /users/{id}   200 {"id": ..., "name": ...} or 404
"""

from __future__ import annotations

import json
from typing import Any

from ..server.cycle import Receive, Scope, Send
from ._respond import read_body, respond_json

MAX_BODY = 64 * 1024


class UsersApp:
    def __init__(self, users: list[str] | None = None) -> None:
        self.users: dict[int, dict[str, Any]] = {}
        self._next = 1
        for name in ("ada", "grace") if users is None else users:
            self._add(name)

    def _add(self, name: str) -> dict[str, Any]:
        user = {"id": self._next, "name": name}
        self.users[self._next] = user
        self._next += 1
        return user

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/") or "/"
        method = scope["method"]
        if path == "/users":
            if method in ("GET", "HEAD"):
                await respond_json(send, 200, list(self.users.values()))
            elif method == "POST":
                await self._create(receive, send)
            else:
                await respond_json(send, 405, {"error": f"{method} is not allowed on /users"},
                                   [(b"allow", b"GET, HEAD, POST")])
            return
        if path.startswith("/users/"):
            if method not in ("GET", "HEAD"):
                await respond_json(send, 405, {"error": f"{method} is not allowed here"},
                                   [(b"allow", b"GET, HEAD")])
                return
            key = path[len("/users/"):]
            user = self.users.get(int(key)) if key.isdigit() else None
            if user is None:
                await respond_json(send, 404, {"error": f"no user {key!r}"})
            else:
                await respond_json(send, 200, user)
            return
        await respond_json(send, 404, {"error": f"no route {path!r}; try GET /users"})

    async def _create(self, receive: Receive, send: Send) -> None:
        body = await read_body(receive, MAX_BODY)
        if body is None:
            await respond_json(send, 413, {"error": f"body over {MAX_BODY} bytes"})
            return
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str) or not name.strip():
            await respond_json(send, 400, {"error": 'send JSON like {"name": "ada"}'})
            return
        user = self._add(name.strip())
        await respond_json(send, 201, user, [(b"location", f"/users/{user['id']}".encode())])


def demo_app() -> UsersApp:
    """A fresh users API (each call has its own store)."""
    return UsersApp()
