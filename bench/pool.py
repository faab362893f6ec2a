"""smtpx.Pool against smtplib through a delay proxy to Postfix (issue 11's targets).

Usage (as root, like the integration tests; PYTHONPATH=src for this tree's smtpx):

    PYTHONPATH=src .venv/bin/python bench/pool.py [--rtt 20] [--count 2000]

Starts the bench Postfix (bench/servers.py) behind bench/proxy.py's delay proxy, then
sends *count* small messages (bench/run.py's, one recipient) three ways, in one run:

- ``smtpx.Pool`` with 4 connections (its defaults otherwise: 100 messages a connection,
  ``deliver_many`` window 8), from ``send_many``; its time includes opening connections;
- smtplib, ``sendmail`` one message after another on one open connection;
- smtplib with 4 threads, each with its own open connection, a quarter of the messages.

The smtplib times start once their connections are open (EHLO done), so the ratios are,
if anything, in smtplib's favour.  Every message must be accepted, or the run fails.
Targets: the pool at least 30x the single connection and 8x the 4 threads.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import threading
import time

import smtpx

try:  # run as a script (bench/ on sys.path) or imported as bench.pool
    import proxy
    import servers
    from run import small_message
except ImportError:
    from bench import proxy, servers
    from bench.run import small_message

HOST = "127.0.0.1"
LOCAL_HOSTNAME = "bench.example.org"
SENDER = "sender@example.org"
TIMEOUT = 60.0


def smtplib_serial(port: int, msgs: list[str], recipient: str) -> float:
    with smtplib.SMTP(HOST, port, local_hostname=LOCAL_HOSTNAME, timeout=TIMEOUT) as c:
        c.ehlo()
        start = time.perf_counter()
        for m in msgs:
            if c.sendmail(SENDER, [recipient], m):
                raise RuntimeError("a recipient was refused")
        return time.perf_counter() - start


def smtplib_threads(port: int, msgs: list[str], recipient: str, threads: int) -> float:
    clients = [
        smtplib.SMTP(HOST, port, local_hostname=LOCAL_HOSTNAME, timeout=TIMEOUT)
        for _ in range(threads)
    ]
    for c in clients:
        c.ehlo()
    errors: list[BaseException] = []
    ready = threading.Barrier(threads + 1)

    def work(c: smtplib.SMTP, share: list[str]) -> None:
        ready.wait()
        try:
            for m in share:
                if c.sendmail(SENDER, [recipient], m):
                    raise RuntimeError("a recipient was refused")
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(c, msgs[i::threads])) for i, c in enumerate(clients)
    ]
    for w in workers:
        w.start()
    ready.wait()
    start = time.perf_counter()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    for c in clients:
        c.quit()
    if errors:
        raise errors[0]
    return elapsed


def pool(port: int, msgs: list[str], recipient: str, connections: int) -> float:
    url = f"smtp://{HOST}:{port}"
    start = time.perf_counter()
    with smtpx.Pool(
        url,
        max_connections=connections,
        policy="compat",
        local_hostname=LOCAL_HOSTNAME,
        timeout=TIMEOUT,
    ) as p:
        results = p.send_many([(m, SENDER, [recipient]) for m in msgs])
    elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.ok]
    if bad:
        raise RuntimeError(f"{len(bad)} message(s) not delivered, the first: {bad[0]!r}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtt", type=float, default=20.0, help="added round-trip time, ms")
    ap.add_argument("--count", type=int, default=2000, help="messages per case")
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    msgs = [small_message(i) for i in range(args.count)]
    with servers.postfix() as pf, proxy.DelayProxy((pf.host, pf.port), args.rtt / 1000) as p:
        port = p.port
        recipient = servers.RECIPIENT
        pool(port, msgs[:8], recipient, args.connections)  # warm-up, untimed
        t_pool = pool(port, msgs, recipient, args.connections)
        print(f"smtpx.Pool ({args.connections} connections): {t_pool:.2f} s", file=sys.stderr)
        t_threads = smtplib_threads(port, msgs, recipient, args.connections)
        print(f"smtplib, {args.connections} threads: {t_threads:.2f} s", file=sys.stderr)
        t_serial = smtplib_serial(port, msgs, recipient)
        print(f"smtplib, one connection: {t_serial:.2f} s", file=sys.stderr)
    print(
        f"\n{args.count} messages of ~1 KB, one recipient, {args.rtt:g} ms RTT added by "
        f"bench/proxy.py, Postfix; Python {sys.version.split()[0]}, smtpx {smtpx.__version__}\n"
    )
    print("| client | seconds | messages/s | smtpx.Pool is |")
    print("|---|---:|---:|---:|")
    for name, t in [
        (f"smtpx.Pool, {args.connections} connections", t_pool),
        (f"smtplib, {args.connections} threads, a connection each", t_threads),
        ("smtplib, one connection", t_serial),
    ]:
        print(f"| {name} | {t:.2f} | {args.count / t:.0f} | {t / t_pool:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
