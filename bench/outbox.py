"""Outbox throughput: ``put_many`` of 10,000 messages in batches (target: >= 5,000 msg/s),
and a worker draining them into the embedded sink server.

    PYTHONPATH=src python bench/outbox.py [--messages 10000] [--batch 1000] [--drain]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from smtpx.outbox import Outbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--drain", action="store_true", help="also drain into a SinkServer")
    args = parser.parse_args()
    body = b"From: <a@example.org>\r\nSubject: bench\r\n\r\n" + b"x" * 2000 + b"\r\n"
    with tempfile.TemporaryDirectory() as tmp, Outbox(Path(tmp) / "bench.db") as outbox:
        started = time.perf_counter()
        for first in range(0, args.messages, args.batch):
            count = min(args.batch, args.messages - first)
            outbox.put_many([(body, "a@example.org", ["b@example.org"])] * count)
        elapsed = time.perf_counter() - started
        print(
            f"put_many: {args.messages} messages in batches of {args.batch}: {elapsed:.2f} s,"
            f" {args.messages / elapsed:,.0f} msg/s"
        )
        started = time.perf_counter()
        for _ in range(200):
            outbox.put(body, "a@example.org", ["b@example.org"])
        elapsed = time.perf_counter() - started
        print(f"put (one at a time, one fsync each): {200 / elapsed:,.0f} msg/s")
        if args.drain:
            from smtpx.testing import SinkServer

            with SinkServer() as server:
                url = f"smtp://{server.host}:{server.port}"
                started = time.perf_counter()
                report = outbox.run(url=url, policy="compat", batch_size=100)
                elapsed = time.perf_counter() - started
                print(
                    f"worker drain into SinkServer: {report.attempts} messages in"
                    f" {elapsed:.2f} s, {report.attempts / elapsed:,.0f} msg/s"
                )


if __name__ == "__main__":
    main()
