"""The core's cost per transaction, without an observer and with one (no I/O at all).

Usage: PYTHONPATH=src python bench/core_events.py [--count N] [--rounds R]

Each transaction is what the engine asks of the core for a pipelined ``sendmail`` with
three recipients: one group (MAIL, RCPT x3, DATA), its five replies, the content and its
final reply.  Prints the best round's microseconds per transaction for: no observer (the
fast path, which must not get slower), a no-op observer, and a ``Transcript``.  Against
a tree without observers only the first row is printed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from smtpx._protocol import ClientConnection, Command

GREETING = b"220 sink ESMTP\r\n"
EHLO = b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
ENVELOPE = b"250 2.1.0 ok\r\n" * 4 + b"354 go on\r\n"
FINAL = b"250 2.0.0 queued\r\n"
CONTENT = b"Subject: bench\r\n\r\n" + b"a line of the message body\r\n" * 30


def session(**kwargs: Any) -> ClientConnection:
    conn = ClientConnection(**kwargs)
    conn.receive_data(GREETING)
    conn.next_replies(1)
    conn.send(Command.ehlo("bench"))
    conn.receive_data(EHLO)
    conn.next_replies(1)
    return conn


def run(conn: ClientConnection, count: int) -> float:
    commands = [
        Command.mail("<a@example.test>"),
        *(Command.rcpt(f"<r{i}@example.test>") for i in range(3)),
        Command.data(),
    ]
    start = time.perf_counter()
    for _ in range(count):
        conn.send_group(commands)
        conn.receive_data(ENVELOPE)
        conn.next_replies(5)
        conn.send_data(CONTENT)
        conn.end_data()
        conn.receive_data(FINAL)
        conn.next_replies(1)
    return time.perf_counter() - start


def best(make: Callable[[], ClientConnection], count: int, rounds: int) -> float:
    return min(run(make(), count) for _ in range(rounds)) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"no observer      {best(session, args.count, args.rounds):7.2f} us/transaction")
    try:
        from smtpx import Transcript
    except ImportError:
        return
    print(
        "no-op observer   "
        f"{best(lambda: session(observer=lambda e: None), args.count, args.rounds):7.2f}"
        " us/transaction"
    )
    print(
        "Transcript       "
        f"{best(lambda: session(observer=Transcript()), args.count, args.rounds):7.2f}"
        " us/transaction"
    )


if __name__ == "__main__":
    main()
