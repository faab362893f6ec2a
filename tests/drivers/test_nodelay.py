"""Both drivers send each write at once (TCP_NODELAY): with Nagle's algorithm a second
small write waits for the ACK of the first, a round trip later (bench/rtt.py measured a
CHUNKING batch on the blocking client at 0.46 round trips per message instead of 0.3)."""

from __future__ import annotations

import asyncio
import socket

import smtpx

from .scripted import Peer, scripted_server


def _greet_then_wait(peer: Peer) -> None:
    peer.send(b"220 test.example ESMTP\r\n")
    peer.readline()  # until the client closes


def test_blocking_client_sets_tcp_nodelay() -> None:
    with scripted_server(_greet_then_wait) as (port, _):
        client = smtpx.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        try:
            assert client.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client.close()


def test_asyncio_client_has_tcp_nodelay_too() -> None:
    async def main() -> int:
        client = smtpx.AsyncSMTP("127.0.0.1", port, local_hostname="client.test", timeout=5)
        await client.connect()
        try:
            assert client.sock is not None
            raw = client.sock.get_extra_info("socket")
            return int(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        finally:
            await client.close()

    with scripted_server(_greet_then_wait) as (port, _):
        assert asyncio.run(main()) != 0
