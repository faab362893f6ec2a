"""Benchmark smtpx against smtplib and aiosmtplib on Postfix's smtp-sink (loopback only).

Usage: .venv/bin/python bench/run.py [--quick] [--runs N] [--pin] [--workload NAME ...]

The parent process starts ``smtp-sink`` on 127.0.0.1 (ephemeral port), then for each round
runs every (workload, client) pair in a fresh child process (``--child``), rotating the
client order from round to round.  Each child imports the same modules, builds its input,
warms up once on a separate connection and then times the workload.  The parent prints
the median per client and ratios against smtplib (and aiosmtplib for asyncio clients).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiosmtplib

import smtpx

try:  # the ceiling clients (bench/ceiling.py), run as a script or imported from bench/
    import ceiling
except ImportError:
    from bench import ceiling

try:
    from smtpx._async import AsyncSMTP
except Exception:  # not written yet, or broken: skip its column
    AsyncSMTP = None

HOST = "127.0.0.1"
SENDER = "sender@example.org"
CLIENTS = ["smtplib", "smtpx", "aiosmtplib", "smtpx-async"]
# Opt-in (--client raw raw-async): bare loops that parse and check nothing, the upper
# bound for any Python client here; only for the small and conns workloads.
CEILING = list(ceiling.CLIENTS)
ASYNC_CLIENTS = {"aiosmtplib", "smtpx-async", "raw-async"}
WORKLOADS = ["small", "fanout", "large", "conns", "sessions"]
CONN_COUNTS = [1, 8, 32]
MB = 1_000_000

# ---------------------------------------------------------------------------
# Workload definitions (full size; --quick divides counts by QUICK_FACTOR).
# ---------------------------------------------------------------------------
QUICK_FACTOR = 10
FULL = {
    "small_msgs": 2000,
    "fanout_rcpts": 100,
    "fanout_msgs": 50,
    "large_bytes": 20 * MB,
    "large_times": 5,
    "conns_msgs": 5000,
    "sessions": 500,
}


def sizes(quick: bool) -> dict[str, int]:
    if not quick:
        return dict(FULL)
    s = {k: max(1, v // QUICK_FACTOR) for k, v in FULL.items()}
    s["fanout_rcpts"] = FULL["fanout_rcpts"]  # keep the shape, fewer repetitions
    s["large_times"] = 2
    return s


def small_message(i: int = 0) -> str:
    """About 1 KB, ASCII, LF line endings (as most programs pass them)."""
    body = "".join(
        f"Line {n:02d} of a small benchmark message, padding padding pad.\n" for n in range(14)
    )
    return (
        f"From: {SENDER}\nTo: rcpt@example.org\nSubject: benchmark message {i}\n"
        f"Message-ID: <bench-{i}@example.org>\n\n{body}"
    )


def large_message(size: int) -> str:
    """~size bytes; a quarter of the lines start with '.', half end in a bare LF."""
    lines = []
    for n in range(64):
        text = ("." if n % 4 == 0 else "") + f"large body line {n:02d} " + "x" * 40
        lines.append(text + ("\n" if n % 2 else "\r\n"))
    block = "".join(lines)
    header = f"From: {SENDER}\r\nTo: rcpt@example.org\r\nSubject: large\r\n\r\n"
    # One allocation for the whole text, so the baseline peak RSS is ~1x the message size.
    return "".join([header, *([block] * max(1, (size - len(header)) // len(block)))])


def recipients(n: int) -> list[str]:
    return [f"rcpt{i}@example.org" for i in range(n)]


# ---------------------------------------------------------------------------
# Client adapters. Every child imports all client modules so allocator state and import
# history are the same whichever client is measured.
# ---------------------------------------------------------------------------


def available_clients() -> list[str]:
    return [c for c in CLIENTS if c != "smtpx-async" or AsyncSMTP is not None] + CEILING


def sync_factory(name: str) -> Callable[[int], Any]:
    mod: Any = smtplib if name == "smtplib" else smtpx
    return lambda port: mod.SMTP(HOST, port)


async def async_open(name: str, port: int) -> Any:
    if name == "aiosmtplib":
        c = aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False, use_tls=False)
    else:
        c = AsyncSMTP(HOST, port)  # constructor does not connect
    await c.connect()
    return c


# --- blocking --------------------------------------------------------------------------


def sync_run(name: str, workload: str, port: int, sz: dict[str, int], ctx: dict[str, Any]) -> int:
    """Run one workload (or its warm-up when ctx['warm']) and return units done."""
    new = sync_factory(name)
    warm = ctx["warm"]
    if workload == "small":
        n = 20 if warm else sz["small_msgs"]
        msgs = ctx["msgs"]
        c = new(port)
        c.ehlo()
        for i in range(n):
            c.sendmail(SENDER, ["rcpt@example.org"], msgs[i % len(msgs)])
        c.quit()
        return n
    if workload == "fanout":
        n = 2 if warm else sz["fanout_msgs"]
        c = new(port)
        c.ehlo()
        for _ in range(n):
            c.sendmail(SENDER, ctx["rcpts"], ctx["msgs"][0])
        c.quit()
        return n
    if workload == "large":
        n = 1 if warm else sz["large_times"]
        msg = ctx["warm_large"] if warm else ctx["large"]
        c = new(port)
        c.ehlo()
        for _ in range(n):
            c.sendmail(SENDER, ["rcpt@example.org"], msg)
        c.quit()
        return n * len(msg)
    if workload.startswith("conns"):
        nconn = int(workload[5:])
        total = 4 * nconn if warm else sz["conns_msgs"]
        clients = [new(port) for _ in range(nconn)]
        for c in clients:
            c.ehlo()
        msgs = ctx["msgs"]
        share = [total // nconn + (1 if k < total % nconn else 0) for k in range(nconn)]

        def worker(c: Any, count: int) -> None:
            for i in range(count):
                c.sendmail(SENDER, ["rcpt@example.org"], msgs[i % len(msgs)])

        ceiling.run_threads(ctx, worker, list(zip(clients, share, strict=True)))
        for c in clients:
            c.quit()
        return total
    if workload == "sessions":
        n = 10 if warm else sz["sessions"]
        msg = ctx["msgs"][0]
        for _ in range(n):
            c = new(port)
            c.ehlo()
            c.sendmail(SENDER, ["rcpt@example.org"], msg)
            c.quit()
        return n
    raise ValueError(workload)


# --- asyncio ---------------------------------------------------------------------------


async def async_run(
    name: str, workload: str, port: int, sz: dict[str, int], ctx: dict[str, Any]
) -> int:
    import asyncio

    warm = ctx["warm"]
    if workload in ("small", "fanout", "large"):
        if workload == "small":
            n = 20 if warm else sz["small_msgs"]
            rcpts, msgs = ["rcpt@example.org"], ctx["msgs"]
        elif workload == "fanout":
            n = 2 if warm else sz["fanout_msgs"]
            rcpts, msgs = ctx["rcpts"], ctx["msgs"][:1]
        else:
            n = 1 if warm else sz["large_times"]
            rcpts, msgs = ["rcpt@example.org"], [ctx["warm_large"] if warm else ctx["large"]]
        c = await async_open(name, port)
        await c.ehlo()
        for i in range(n):
            await c.sendmail(SENDER, rcpts, msgs[i % len(msgs)])
        await c.quit()
        return n * len(msgs[0]) if workload == "large" else n
    if workload.startswith("conns"):
        nconn = int(workload[5:])
        total = 4 * nconn if warm else sz["conns_msgs"]
        clients = await asyncio.gather(*(async_open(name, port) for _ in range(nconn)))
        for c in clients:
            await c.ehlo()
        msgs = ctx["msgs"]
        share = [total // nconn + (1 if k < total % nconn else 0) for k in range(nconn)]

        async def worker(c: Any, count: int) -> None:
            for i in range(count):
                await c.sendmail(SENDER, ["rcpt@example.org"], msgs[i % len(msgs)])

        ctx["t0"] = time.perf_counter()
        await asyncio.gather(*(worker(c, k) for c, k in zip(clients, share, strict=True)))
        ctx["t1"] = time.perf_counter()
        for c in clients:
            await c.quit()
        return total
    if workload == "sessions":
        n = 10 if warm else sz["sessions"]
        msg = ctx["msgs"][0]
        for _ in range(n):
            c = await async_open(name, port)
            await c.ehlo()
            await c.sendmail(SENDER, ["rcpt@example.org"], msg)
            await c.quit()
        return n
    raise ValueError(workload)


# ---------------------------------------------------------------------------
# Child: one client, one workload, one timed run. Prints one JSON line.
# ---------------------------------------------------------------------------


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (every thread): on a shared VM it
    varies far less from run to run than a rate does."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(name: str, workload: str, port: int, quick: bool) -> None:
    import asyncio

    sz = sizes(quick)
    ctx: dict[str, Any] = {
        "sender": SENDER,
        "msgs": [small_message(i) for i in range(16)],
        "rcpts": recipients(sz["fanout_rcpts"]),
    }
    if workload == "large":
        ctx["warm_large"] = large_message(256 * 1024)
        ctx["large"] = large_message(sz["large_bytes"])

    def once(warm: bool) -> tuple[int, float]:
        ctx["warm"] = warm
        ctx.pop("t0", None)
        t0 = time.perf_counter()
        if name == "raw":
            units = ceiling.sync_run(HOST, workload, port, sz, ctx)
        elif name == "raw-async":
            units = asyncio.run(ceiling.async_run(HOST, workload, port, sz, ctx))
        elif name in ASYNC_CLIENTS:
            units = asyncio.run(async_run(name, workload, port, sz, ctx))
        else:
            units = sync_run(name, workload, port, sz, ctx)
        t1 = time.perf_counter()
        if "t0" in ctx:  # conns: only the sending phase is timed
            t0, t1 = ctx["t0"], ctx["t1"]
        return units, t1 - t0

    once(warm=True)
    gc.collect()
    base_rss = maxrss_bytes()
    cpu_before = cpu_seconds()
    units, secs = once(warm=False)
    cpu = cpu_seconds() - cpu_before
    result: dict[str, Any] = {"units": units, "seconds": secs, "smtpx": smtpx.__file__}
    if workload == "large":
        result["extra_rss"] = maxrss_bytes() - base_rss
        result["msg_bytes"] = len(ctx["large"])
        result["messages"] = units // len(ctx["large"])
    else:
        result["messages"] = units
    result["cpu"] = cpu  # user + system seconds of this process, all its threads
    print(json.dumps(result))


# ---------------------------------------------------------------------------
# Parent: smtp-sink, scheduling, report.
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ehlo_probe(port: int) -> bytes:
    with socket.create_connection((HOST, port), timeout=2) as s:
        f = s.makefile("rwb")
        f.readline()
        f.write(b"EHLO bench.example.org\r\n")
        f.flush()
        lines = []
        while True:
            line = f.readline()
            if not line:
                break
            lines.append(line)
            if line[3:4] != b"-":
                break
        f.write(b"QUIT\r\n")
        f.flush()
        f.readline()
        return b"".join(lines)


@contextlib.contextmanager
def smtp_sink(pin: bool) -> Iterator[int]:
    exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    with tempfile.TemporaryFile() as log:
        proc, port = start_sink(exe, log, pin)
        try:
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_sink(exe: str, log: Any, pin: bool) -> tuple[subprocess.Popen[bytes], int]:
    for _attempt in range(5):
        port = free_port()
        cmd = [exe]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody"]  # smtp-sink refuses to run as root otherwise
        cmd += [f"{HOST}:{port}", "1000"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        if pin:
            os.sched_setaffinity(proc.pid, {1})
        deadline = time.monotonic() + 5
        caps = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                caps = ehlo_probe(port)
                break
            except OSError:
                time.sleep(0.05)
        if caps:
            for ext in (b"PIPELINING", b"8BITMIME"):
                if ext not in caps.upper():
                    print(f"warning: smtp-sink does not advertise {ext.decode()}", file=sys.stderr)
            return proc, port
        proc.kill()
        proc.wait()
    log.seek(0)
    raise RuntimeError(f"smtp-sink did not start: {log.read().decode(errors='replace')}")


def run_child(
    name: str, workload: str, port: int, quick: bool, pin: bool, src: str | None = None
) -> dict[str, Any]:
    """Run one child; ``src``: the directory that holds the ``smtpx`` package it imports
    (first on its PYTHONPATH), by default whatever this process's environment gives."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, workload, str(port)]
    if quick:
        cmd.append("--quick")
    env = None
    if src is not None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    preexec = (lambda: os.sched_setaffinity(0, {0})) if pin else None
    try:
        p = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=preexec,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return {"error": tail}
    return json.loads(p.stdout.strip().splitlines()[-1])


def expand(workloads: list[str]) -> list[str]:
    out = []
    for w in workloads:
        out += [f"conns{n}" for n in CONN_COUNTS] if w == "conns" else [w]
    return out


UNIT = {"small": "msg/s", "fanout": "msg/s", "large": "MB/s", "sessions": "sessions/s"}
LABEL = {
    "small": "small (1 KB msgs, 1 conn)",
    "fanout": "fanout (100 rcpts)",
    "sessions": "sessions (connect..QUIT)",
}


def rate(r: dict[str, Any], workload: str) -> float:
    per_s = r["units"] / r["seconds"]
    return per_s / MB if workload == "large" else per_s


def fmt_rate(x: float) -> str:
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def cpu_per_message(r: dict[str, Any]) -> float:
    """CPU seconds (user + system) per message (per session for ``sessions``)."""
    return float(r["cpu"]) / max(1, int(r["messages"]))


def fmt_cpu(seconds: float, workload: str) -> str:
    return f"{seconds * 1e3:,.1f} ms" if workload == "large" else f"{seconds * 1e6:,.0f} us"


def cpu_table(
    results: dict[tuple[str, str], list[dict[str, Any]]], workloads: list[str], clients: list[str]
) -> list[str]:
    """CPU time per message next to the rates: median and min-max over the runs."""
    lines = [
        "",
        "CPU time per message in the client process (user + system from getrusage, all "
        "threads; median and min-max; large: per message of its size):",
        "",
        "| workload | " + " | ".join(clients) + " |",
        "|" + "---|" * (len(clients) + 1),
    ]
    for w in workloads:
        cells = []
        for c in clients:
            ok = [cpu_per_message(r) for r in results.get((w, c), []) if "cpu" in r]
            cells.append(
                f"{fmt_cpu(statistics.median(ok), w)} ({fmt_cpu(min(ok), w)}-{fmt_cpu(max(ok), w)})"
                if ok
                else "-"
            )
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines


def report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    workloads: list[str],
    clients: list[str],
    sz: dict[str, int],
) -> str:
    def median_rate(w: str, c: str) -> float | None:
        ok = [rate(r, w) for r in results.get((w, c), []) if "error" not in r]
        return statistics.median(ok) if ok else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a is not None and b else "-"

    others = [c for c in clients if c != "smtplib"]
    head = ["workload", "smtplib (absolute)"] + [f"{c} / smtplib" for c in others]
    by_aiosmtplib = [c for c in ("smtpx-async", "raw-async") if c in clients]
    head += [f"{c} / aiosmtplib" for c in by_aiosmtplib]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for w in workloads:
        base = median_rate(w, "smtplib")
        unit = UNIT.get(w, "msg/s")
        label = LABEL.get(
            w, f"conns ({sz['conns_msgs']:,} msgs, {w[5:]} conn{'s' * (w != 'conns1')})"
        )
        if w == "small":
            label = f"small ({sz['small_msgs']:,} x 1 KB, 1 conn)"
        elif w == "large":
            label = f"large ({sz['large_bytes'] // MB} MB x {sz['large_times']}, dots + bare LF)"
        row = [label, f"1.00 ({fmt_rate(base)} {unit})" if base else "-"]
        row += [ratio(median_rate(w, c), base) for c in others]
        row += [ratio(median_rate(w, c), median_rate(w, "aiosmtplib")) for c in by_aiosmtplib]
        lines.append("| " + " | ".join(row) + " |")

    lines += cpu_table(results, workloads, clients)

    # Absolute medians and spread, for judging noise.
    lines += ["", "Median (min-max) per client:", ""]
    lines += ["| workload | " + " | ".join(clients) + " |", "|" + "---|" * (len(clients) + 1)]
    for w in workloads:
        cells = []
        for c in clients:
            ok = [rate(r, w) for r in results.get((w, c), []) if "error" not in r]
            errs = [r for r in results.get((w, c), []) if "error" in r]
            cell = (
                f"{fmt_rate(statistics.median(ok))} ({fmt_rate(min(ok))}-{fmt_rate(max(ok))})"
                if ok
                else "-"
            )
            if errs:
                cell += f" [{len(errs)} failed]"
            cells.append(cell)
        lines.append(f"| {w} ({UNIT.get(w, 'msg/s')}) | " + " | ".join(cells) + " |")

    if "large" in workloads:
        lines += [
            "",
            "Large message: extra peak RSS while sending (ru_maxrss after the timed sends "
            "minus before them, message already built; median):",
            "",
            "| client | extra peak RSS | x message size |",
            "|---|---|---|",
        ]
        for c in clients:
            ok = [r for r in results.get(("large", c), []) if "error" not in r]
            if not ok:
                lines.append(f"| {c} | - | - |")
                continue
            extra = statistics.median(r["extra_rss"] for r in ok)
            lines.append(f"| {c} | {extra / MB:.0f} MB | {extra / ok[0]['msg_bytes']:.1f} |")
    return "\n".join(lines)


BASE = "@base"  # suffix of a client name run from the --baseline tree


def measure(
    clients: list[str],
    workloads: list[str],
    runs: int,
    quick: bool,
    pin: bool,
    sources: dict[str, str | None],
) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], bool]:
    """Every (workload, client) once per round, the client order rotated from round to
    round; ``sources[client]`` is the smtpx source tree its child imports (None: the
    environment's)."""
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    crashed = False
    started = time.monotonic()
    with smtp_sink(pin) as port:
        for rnd in range(runs):
            order = clients[rnd % len(clients) :] + clients[: rnd % len(clients)]
            for w in workloads:
                for c in order:
                    if c in CEILING and w not in ceiling.WORKLOADS:
                        continue
                    r = run_child(c.removesuffix(BASE), w, port, quick, pin, sources.get(c))
                    results.setdefault((w, c), []).append(r)
                    if "error" in r:
                        crashed = True
                        print(f"  {w} {c}: ERROR {r['error']}", file=sys.stderr)
            print(
                f"round {rnd + 1}/{runs} done ({time.monotonic() - started:.0f} s)",
                file=sys.stderr,
            )
    return results, crashed


def baseline_report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    workloads: list[str],
    clients: list[str],
) -> str:
    """This tree against the baseline tree, per client: rates, CPU, and for large the
    extra peak memory.  Ratios are this tree / baseline (rate > 1: faster; CPU < 1: less
    work)."""

    def ok(w: str, c: str) -> list[dict[str, Any]]:
        return [r for r in results.get((w, c), []) if "error" not in r]

    def med(values: list[float]) -> float | None:
        return statistics.median(values) if values else None

    def paired(w: str, c: str) -> list[float]:
        # Round k of this tree against round k of the baseline: both ran in that round.
        mine, base = results.get((w, c), []), results.get((w, c + BASE), [])
        return [
            rate(a, w) / rate(b, w)
            for a, b in zip(mine, base, strict=False)
            if "error" not in a and "error" not in b
        ]

    lines = [
        "| workload | client | this tree | baseline | this / baseline | per-round ratios "
        "| CPU/msg this | CPU/msg baseline | CPU this / baseline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in workloads:
        for c in clients:
            if c.endswith(BASE):
                continue
            mine = med([rate(r, w) for r in ok(w, c)])
            base = med([rate(r, w) for r in ok(w, c + BASE)])
            rounds = paired(w, c)
            cpu_mine = med([cpu_per_message(r) for r in ok(w, c)])
            cpu_base = med([cpu_per_message(r) for r in ok(w, c + BASE)])
            unit = UNIT.get(w, "msg/s")
            lines.append(
                "| "
                + " | ".join(
                    [
                        w,
                        c,
                        f"{fmt_rate(mine)} {unit}" if mine else "-",
                        f"{fmt_rate(base)} {unit}" if base else "-",
                        f"{mine / base:.3f}" if mine and base else "-",
                        f"{min(rounds):.2f}-{max(rounds):.2f}" if rounds else "-",
                        fmt_cpu(cpu_mine, w) if cpu_mine is not None else "-",
                        fmt_cpu(cpu_base, w) if cpu_base is not None else "-",
                        f"{cpu_mine / cpu_base:.3f}" if cpu_mine and cpu_base else "-",
                    ]
                )
                + " |"
            )
    if "large" in workloads:
        lines += [
            "",
            "Large message: extra peak RSS while sending (median):",
            "",
            "| client | this tree | baseline |",
            "|---|---|---|",
        ]
        for c in clients:
            if c.endswith(BASE):
                continue
            cells = []
            for name in (c, c + BASE):
                rss = med([float(r["extra_rss"]) for r in ok("large", name)])
                cells.append("-" if rss is None else f"{rss / MB:.1f} MB")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="counts / 10, for a smoke run")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 5, --quick 3)")
    ap.add_argument("--pin", action="store_true", help="sink on CPU 1, clients on CPU 0")
    ap.add_argument("--workload", nargs="+", choices=WORKLOADS, default=None)
    ap.add_argument("--client", nargs="+", choices=CLIENTS + CEILING, default=None, help="subset")
    ap.add_argument(
        "--baseline",
        metavar="SRC",
        help="compare smtpx from this tree with smtpx from SRC (a tree's src/ directory)",
    )
    ap.add_argument("--json", metavar="PATH", help="also write every run's raw result here")
    ap.add_argument("--child", nargs=3, metavar=("CLIENT", "WORKLOAD", "PORT"), help="internal")
    args = ap.parse_args()

    if args.child:
        name, workload, port = args.child
        child(name, workload, int(port), args.quick)
        return 0

    runs = max(1, args.runs if args.runs is not None else (3 if args.quick else 5))
    if args.pin and (os.cpu_count() or 1) < 2:
        print("note: fewer than 2 CPUs, --pin ignored", file=sys.stderr)
        args.pin = False
    sz = sizes(args.quick)
    mode = "quick" if args.quick else "full"
    setting = (
        f"smtp-sink on loopback, {mode} sizes, median of {runs} interleaved runs, "
        f"{'client pinned to CPU 0, sink to CPU 1' if args.pin else 'unpinned'}; "
        f"Python {sys.version.split()[0]}, aiosmtplib {aiosmtplib.__version__}"
    )

    if args.baseline:
        this_src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
        base_src = os.path.abspath(args.baseline)
        if not os.path.exists(os.path.join(base_src, "smtpx", "__init__.py")):
            ap.error(f"--baseline {args.baseline}: no smtpx package there (give a tree's src/)")
        workloads = expand(args.workload or ["small", "fanout", "large"])
        mine = [c for c in ("smtpx", "smtpx-async") if args.client is None or c in args.client]
        if not mine:
            ap.error("--baseline compares smtpx and smtpx-async: name one of them in --client")
        clients = [name for c in mine for name in (c, c + BASE)]
        sources: dict[str, str | None] = {
            c: base_src if c.endswith(BASE) else this_src for c in clients
        }
        results, crashed = measure(clients, workloads, runs, args.quick, args.pin, sources)
        print(f"\n{setting}.\nThis tree: {this_src}\nBaseline:  {base_src}")
        for c in clients:  # what the children really imported, not what was asked
            paths = {r["smtpx"] for w in workloads for r in results.get((w, c), []) if "smtpx" in r}
            print(f"  {c} imported {', '.join(sorted(paths)) or '(no successful run)'}")
        print()
        print(baseline_report(results, workloads, clients))
    else:
        workloads = expand(args.workload or WORKLOADS)
        clients = [
            c
            for c in available_clients()
            if (c in args.client if args.client is not None else c not in CEILING)
        ]
        if "smtplib" not in clients:
            clients.insert(0, "smtplib")  # the baseline is always measured
        if AsyncSMTP is None:
            print(
                "note: smtpx._async.AsyncSMTP not importable; skipping smtpx-async",
                file=sys.stderr,
            )
        results, crashed = measure(clients, workloads, runs, args.quick, args.pin, {})
        print(f"\n{setting}, smtpx {smtpx.__version__}. Ratios > 1 mean faster than smtplib.\n")
        print(report(results, workloads, clients, sz))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({f"{w} {c}": v for (w, c), v in results.items()}, f, indent=1)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
