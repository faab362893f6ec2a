"""Django's ``send_mass_mail`` through a 20 ms round trip: smtpx's backend vs Django's.

Usage (as root, like the integration tests; Django on the path, e.g. the directory
scripts/test.sh installs it into):

    PYTHONPATH=src:.django-5.2 .venv-3.11/bin/python bench/django_mail.py [--rtt 20]
        [--messages 500] [--runs 1]

(Named ``django_mail`` rather than ``django``: a script's directory comes first on
``sys.path``, and a ``django.py`` there would stand in for Django itself.)

Starts the test suite's private Postfix (``tests/integration/servers/postfix.py``), puts
the delay proxy (``bench/proxy.py``) in front of it, configures Django with the same
``EMAIL_HOST``/``EMAIL_PORT`` (plain SMTP, no AUTH) for both backends, and times
``send_mass_mail`` of N small messages (one recipient each) with each backend, from a cold
start (no connection open).  Every message is checked to have arrived.  The issue's
target: the smtpx backend at least 10x faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # tests.integration.servers, from the repository root
    sys.path.insert(0, str(ROOT))

import django  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.mail import get_connection, send_mass_mail  # noqa: E402
from tests.integration.servers import PostfixServer, new_token  # noqa: E402

try:  # run as a script (bench/ on sys.path) or imported as bench.django_mail
    from proxy import DelayProxy
except ImportError:
    from bench.proxy import DelayProxy

import smtpx.django  # noqa: E402

SENDER = "bench@client.test"
RECIPIENT = "alice@example.test"
DELIVERY_TIMEOUT = 120.0  # seconds for Postfix to deliver the last message
BACKENDS = {
    "django": "django.core.mail.backends.smtp.EmailBackend",
    "smtpx": "smtpx.django.EmailBackend",
}


def run_once(name: str, count: int) -> tuple[float, str]:
    """Seconds for ``send_mass_mail`` of *count* messages with backend *name*, and the
    token in their subjects."""
    smtpx.django.close_pools()  # a cold start for smtpx too: no pooled connection yet
    run = new_token()
    datatuple = [
        (f"{run} {i}", f"Benchmark message {i}.\n" * 10, SENDER, [RECIPIENT]) for i in range(count)
    ]
    connection = get_connection(BACKENDS[name])
    started = time.perf_counter()
    sent = send_mass_mail(datatuple, connection=connection)
    elapsed = time.perf_counter() - started
    if sent != count:
        raise SystemExit(f"{name}: send_mass_mail returned {sent}, not {count}")
    return elapsed, run


def wait_delivered(server: PostfixServer, token: str, count: int) -> None:
    mailbox = server.mailbox(RECIPIENT)
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while len(mailbox.find(token)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(mailbox.find(token))} of {count} messages arrived")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", type=float, default=20.0, help="round-trip time, ms")
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1, help="rounds (median reported)")
    args = parser.parse_args()
    # Django 6.1 deprecates the EMAIL_* settings and get_connection(): the bench uses them
    # on both versions, for both backends alike.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", PendingDeprecationWarning)

    server = PostfixServer.start()
    try:
        with DelayProxy((server.host, server.port), rtt=args.rtt / 1000) as proxy:
            settings.configure(
                EMAIL_HOST="127.0.0.1",
                EMAIL_PORT=proxy.port,
                EMAIL_TIMEOUT=30,
                INSTALLED_APPS=[],
            )
            django.setup()
            times: dict[str, list[float]] = {name: [] for name in BACKENDS}
            for _ in range(args.runs):
                for name in BACKENDS:  # interleaved, round by round
                    elapsed, token = run_once(name, args.messages)
                    wait_delivered(server, token, args.messages)  # not timed
                    times[name].append(elapsed)
                    print(
                        f"{name:>7}: {args.messages} messages in {elapsed:7.2f} s "
                        f"({args.messages / elapsed:7.1f} msg/s)",
                        flush=True,
                    )
            smtpx.django.close_pools()
    finally:
        server.stop()
    django_s = statistics.median(times["django"])
    smtpx_s = statistics.median(times["smtpx"])
    print(
        f"\nDjango {django.get_version()}, {args.messages} messages, RTT {args.rtt:g} ms: "
        f"Django's SMTP backend {django_s:.2f} s, smtpx's {smtpx_s:.2f} s: "
        f"{django_s / smtpx_s:.1f}x (target >= 10x)"
    )


if __name__ == "__main__":
    main()
