"""``smtpx outbox ...``: status, list, show, retry, cancel, purge, worker.

The CLI dispatcher calls ``register(subparsers)`` to add the ``outbox`` command and
``run(args)`` to carry it out (returns the exit status)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from ._outbox import Outbox

__all__ = ["register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``outbox`` and its sub-commands to *subparsers* (``add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "outbox", help="inspect and run a durable outbox"
    )
    parser.add_argument("path", help="the outbox file (or sqlite:///path)")
    actions = parser.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    actions.add_parser("status", help="messages and recipients by state")
    listing = actions.add_parser("list", help="messages, newest first")
    listing.add_argument("--state", help="only messages in this state")
    listing.add_argument("--limit", type=int, default=50)
    show = actions.add_parser("show", help="one message with its recipients and attempts")
    show.add_argument("id", type=int)
    retry = actions.add_parser("retry", help="make deferred recipients due now")
    retry.add_argument("ids", type=int, nargs="*", help="messages (default: all)")
    retry.add_argument(
        "--unknown", action="store_true", help="also resend outcome-unknown ones (may duplicate)"
    )
    cancel = actions.add_parser("cancel", help="cancel what is still to send")
    cancel.add_argument("ids", type=int, nargs="+")
    purge = actions.add_parser("purge", help="delete delivered messages older than N days")
    purge.add_argument("--days", type=float, required=True)
    purge.add_argument("--state", action="append", help="states to purge (default: delivered)")
    worker = actions.add_parser("worker", help="send what is due")
    worker.add_argument("--url", required=True, help="smtp+starttls://user:pass@host:587 ...")
    worker.add_argument("--cafile")
    worker.add_argument("--batch-size", type=int, default=50)
    worker.add_argument("--duration", type=float, help="stop after this many seconds")
    worker.add_argument(
        "--wait", action="store_true", help="keep running while messages are deferred"
    )
    return parser


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Carry out the ``outbox`` command *args*; returns the exit status."""
    out = out if out is not None else sys.stdout
    with Outbox(args.path) as outbox:
        command = args.outbox_command
        if command == "status":
            _dump({"messages": outbox.counts(), "recipients": outbox.recipient_counts()}, out)
        elif command == "list":
            for info in outbox.list(args.state, limit=args.limit):
                print(f"{info.id}\t{info.state}\t{info.attempts}\t{info.message_id}", file=out)
        elif command == "show":
            try:
                info = outbox.show(args.id)
            except KeyError:
                print(f"no message {args.id}", file=sys.stderr)
                return 1
            shown = {
                field: getattr(info, field)
                for field in ("id", "key", "message_id", "sender", "state", "attempts", "queue_id")
            }
            shown["recipients"] = [
                {"address": r.address, "state": r.state, "code": r.code, "text": r.text}
                for r in info.recipients
            ]
            shown["attempts_made"] = [
                {"outcome": a.outcome, "code": a.code, "text": a.text} for a in info.history
            ]
            _dump(shown, out)
        elif command == "retry":
            count = outbox.retry(args.ids or None, unknown=args.unknown)
            print(f"{count} messages due now", file=out)
        elif command == "cancel":
            print(f"{outbox.cancel(args.ids)} messages cancelled", file=out)
        elif command == "purge":
            count = outbox.purge(args.days, tuple(args.state or ("delivered",)))
            print(f"{count} messages purged", file=out)
        elif command == "worker":
            options: dict[str, Any] = {}
            if args.cafile:
                options["cafile"] = args.cafile
            report = outbox.run(
                url=args.url,
                batch_size=args.batch_size,
                duration=args.duration,
                wait_deferred=args.wait,
                **options,
            )
            _dump(
                {
                    "batches": report.batches,
                    "attempts": report.attempts,
                    "recipients": report.recipients,
                },
                out,
            )
        else:  # pragma: no cover - argparse allows only the choices above
            raise ValueError(command)
    return 0


def _dump(data: object, out: TextIO) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False), file=out)
