"""Run ``auth_exchange`` with no network: a fake client answers its ``docmd`` calls from
a script, and records the lines the flow sent (``close()`` shows as ``<close>``)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from smtpx._steps import Flow, Invoke

Response = tuple[int, bytes]


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def challenge(data: bytes) -> Response:
    """A 334 reply carrying *data*, as ``getreply`` returns it."""
    return 334, b64(data)


class FakeClient:
    def __init__(self, replies: Iterable[Response]) -> None:
        self.replies = list(replies)
        self.sent: list[str] = []

    def docmd(self, cmd: str, args: str = "") -> Response:
        self.sent.append(f"{cmd} {args}" if args else cmd)
        if not self.replies:
            raise AssertionError(f"the script has no reply for {self.sent[-1]!r}")
        return self.replies.pop(0)

    def close(self) -> None:
        self.sent.append("<close>")


def run(flow: Flow[Any], replies: Iterable[Response]) -> tuple[Any, FakeClient]:
    """Drive *flow* to its end; returns its value and the fake client.  An exception the
    flow raises is raised here, with the fake client as ``exc.client``."""
    client = FakeClient(replies)
    try:
        step = next(flow)
        while True:
            assert isinstance(step, Invoke), step
            try:
                result = step.call(client)
            except Exception as exc:
                step = flow.throw(exc)
            else:
                step = flow.send(result)
    except StopIteration as stop:
        assert not client.replies, f"replies left over: {client.replies}"
        return stop.value, client
    except Exception as exc:
        exc.client = client  # type: ignore[attr-defined]
        raise


def decoded(line: str) -> bytes:
    """The bytes a response line carries."""
    return base64.b64decode(line, validate=True)
