"""A tiny OAuth 2.0 token introspection endpoint (RFC 7662) on loopback.

Dovecot's ``oauth2`` passdb asks it whether a bearer token is good: one
valid token per user answers ``{"active": true, "username": USER}``, anything
else ``{"active": false}``. Every request is recorded, so a test can prove that
an XOAUTH2 or OAUTHBEARER login really went through the token check (and with
which token) rather than through some other passdb.

It runs an ``http.server`` in a daemon thread; ``stop()`` shuts it down.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["IntrospectionCall", "IntrospectionEndpoint"]

PATH = "/introspect"
# A form body bigger than this is not a token request: refuse it unread.
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class IntrospectionCall:
    """One request the endpoint answered: the token it was asked about and the verdict."""

    method: str
    path: str
    token: str
    active: bool


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # introspection_mode = post: token=<token> in a form
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": "request too large"})
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        tokens = urllib.parse.parse_qs(body).get("token", [""])
        self._answer(tokens[0])

    def do_GET(self) -> None:  # introspection_mode = auth: Authorization: Bearer <token>
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            query = urllib.parse.urlsplit(self.path).query  # introspection_mode = get
            token = urllib.parse.parse_qs(query).get("token", [""])[0]
        self._answer(token)

    def _answer(self, token: str) -> None:
        if urllib.parse.urlsplit(self.path).path != PATH:
            self._reply(404, {"error": "not found"})
            return
        username = self.server.tokens.get(token)
        self.server.record(IntrospectionCall(self.command, self.path, token, username is not None))
        if username is None:
            self._reply(200, {"active": False})
        else:
            self._reply(200, {"active": True, "username": username, "scope": "mail"})

    def _reply(self, status: int, document: Mapping[str, object]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the calls are recorded; stderr noise would only clutter test output


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tokens: Mapping[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokens = dict(tokens)
        self.calls: list[IntrospectionCall] = []
        self._lock = threading.Lock()

    def record(self, call: IntrospectionCall) -> None:
        with self._lock:
            self.calls.append(call)


class IntrospectionEndpoint:
    """Answers token introspection for ``tokens`` (token -> user name).

    Example:
        >>> endpoint = IntrospectionEndpoint({"good-token": "alice@example.test"})
        >>> endpoint.url.startswith("http://127.0.0.1:")
        True
        >>> endpoint.stop()
    """

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._server = _Server(tokens)
        self.host = "127.0.0.1"
        self.port = int(self._server.server_address[1])
        self.url = f"http://{self.host}:{self.port}{PATH}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="oauth2-introspection",
            daemon=True,
        )
        self._thread.start()

    @property
    def calls(self) -> list[IntrospectionCall]:
        """A copy of the requests answered so far, oldest first."""
        with self._server._lock:
            return list(self._server.calls)

    def calls_for(self, token: str) -> list[IntrospectionCall]:
        return [call for call in self.calls if call.token == token]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
