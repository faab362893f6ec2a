"""Round trips per message: every client behind a delay proxy, against Postfix and smtp-sink.

Usage (as root, like the integration tests; PYTHONPATH=src for this tree's smtpx):

    PYTHONPATH=src .venv/bin/python bench/rtt.py [--rtt 20] [--runs 3] [--quick]

The parent starts the test suite's private Postfix (CHUNKING offered; AUTH after STARTTLS,
see bench/servers.py) and smtp-sink (no CHUNKING), puts a delay proxy (bench/proxy.py) in
front of each, checks the proxy with a no-op echo, then runs every case in a fresh child
process, interleaved round by round.  A case is one client API doing one thing; its time
divided by the RTT is its round trips.  See bench/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import smtplib
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import aiosmtplib

import smtpx

try:  # run as a script (bench/ on sys.path) or imported as bench.rtt
    import bare
    import proxy
    from run import small_message
except ImportError:
    from bench import bare, proxy
    from bench.run import small_message

HOST = "127.0.0.1"
LOCAL_HOSTNAME = "bench.example.org"  # no DNS look-up for the EHLO name, in any client
SENDER = "sender@example.org"
SINK_RECIPIENT = "rcpt@example.org"
CLIENT_TIMEOUT = 30.0  # seconds, every client operation
CHILD_TIMEOUT = 300  # seconds, one child process
NEWLINE = b"\n"

# (client, api) pairs.  "one at a time" APIs are compared with the bare client that sends
# one transaction at a time, the batch API with the bare client that pipelines across
# transactions (bench/bare.py).
REAL = [
    ("smtplib", "sendmail"),
    ("aiosmtplib", "sendmail"),
    ("smtpx", "sendmail"),
    ("smtpx", "deliver"),
    ("smtpx", "deliver_many"),
    ("smtpx-async", "sendmail"),
    ("smtpx-async", "deliver"),
    ("smtpx-async", "deliver_many"),
]
ASYNC = {"aiosmtplib", "smtpx-async"}
LABEL = {
    "smtplib": "smtplib",
    "aiosmtplib": "aiosmtplib",
    "smtpx": "smtpx.SMTP",
    "smtpx-async": "smtpx.AsyncSMTP",
    "bare": "bare",
}
SERVER_LABEL = {"postfix": "Postfix (CHUNKING)", "sink": "smtp-sink (no CHUNKING)"}


@dataclass(frozen=True)
class Case:
    """One measurement: ``mode`` is open (N messages on an open connection), batch (one
    ``deliver_many`` of N items with ``quit=True``), session (connect ... QUIT, one
    message) or tls (the same with STARTTLS and AUTH)."""

    mode: str
    server: str
    client: str
    api: str

    @property
    def name(self) -> str:
        return f"{self.mode}/{self.server}/{self.client}/{self.api}"


def matching_bare(case: Case) -> Case:
    """The bare client a case is compared with (same mode and server)."""
    if case.mode in ("session", "tls"):
        return Case(case.mode, case.server, "bare", "session")
    chunking = case.server == "postfix"
    if case.api in ("deliver_many", "pipe", "bdat8"):
        api = "bdat8" if chunking else "pipe"
    else:
        api = "bdat1" if chunking else "data"
    return Case(case.mode, case.server, "bare", api)


def all_cases(servers: Iterable[str]) -> list[Case]:
    cases = []
    for server in servers:
        kinds = ["data", "pipe"] + (["bdat1", "bdat8"] if server == "postfix" else [])
        cases += [Case("open", server, c, a) for c, a in REAL]
        cases += [Case("open", server, "bare", k) for k in kinds]
        cases += [Case("batch", server, c, "deliver_many") for c in ("smtpx", "smtpx-async")]
        cases += [
            Case(
                "batch",
                server,
                "bare",
                matching_bare(Case("batch", server, "", "deliver_many")).api,
            )
        ]
        if server == "postfix":
            for mode in ("session", "tls"):
                cases += [Case(mode, server, c, a) for c, a in REAL]
                # The one-shot smtpx.send(url=...) / asend: connect, secure, log in, send, QUIT.
                cases += [Case(mode, server, c, "send") for c in ("smtpx", "smtpx-async")]
                cases += [Case(mode, server, "bare", "session")]
    return cases


# ---------------------------------------------------------------------------------------
# Child: one case, timed; prints one JSON line.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    case: Case
    port: int
    recipient: str
    count: int  # messages (open, batch) or sessions (session, tls)
    ca_file: str = ""
    user: str = ""
    password: str = ""


def check(result: Any, api: str) -> None:
    """Fail the run if any message was not accepted: a figure must come from deliveries."""
    if api == "sendmail" and result:
        raise RuntimeError(f"refused recipients: {result!r}")
    if api == "deliver_many":
        bad = [r for r in result if isinstance(r, Exception)]
        if bad:
            raise RuntimeError(f"{len(bad)} batch item(s) failed, the first: {bad[0]!r}")


def one_shot_url(spec: Spec) -> tuple[str, dict[str, Any]]:
    """The URL and options of ``smtpx.send``: STARTTLS and AUTH (the strict policy) for a
    tls session, plain SMTP (the compat policy: no TLS offered) otherwise."""
    options: dict[str, Any] = {"local_hostname": LOCAL_HOSTNAME, "timeout": CLIENT_TIMEOUT}
    if spec.case.mode == "tls":
        options.update(username=spec.user, password=spec.password, cafile=spec.ca_file)
        return f"smtp+starttls://{HOST}:{spec.port}", options
    return f"smtp://{HOST}:{spec.port}", {**options, "policy": "compat"}


def sync_client(spec: Spec, msgs: list[str]) -> float:
    case = spec.case
    mod: Any = smtplib if case.client == "smtplib" else smtpx
    rcpts = [spec.recipient]

    def new() -> Any:
        c = mod.SMTP(HOST, spec.port, local_hostname=LOCAL_HOSTNAME, timeout=CLIENT_TIMEOUT)
        if case.mode == "tls":
            c.starttls(context=ssl.create_default_context(cafile=spec.ca_file))
            c.login(spec.user, spec.password)
        return c

    def send(c: Any, messages: list[str], quit: bool = False) -> None:
        if case.api == "sendmail":
            for m in messages:
                check(c.sendmail(SENDER, rcpts, m), "sendmail")
        elif case.api == "deliver":
            for m in messages:
                c.deliver(m, SENDER, rcpts)
        else:
            check(c.deliver_many([(m, SENDER, rcpts) for m in messages], quit=quit), case.api)
            return
        if quit:
            c.quit()

    if case.mode in ("open", "batch"):
        c = new()
        c.ehlo()
        send(c, msgs[:1])  # warm-up, untimed
        batch = [msgs[i % len(msgs)] for i in range(spec.count)]
        start = time.perf_counter()
        send(c, batch, quit=case.mode == "batch")
        elapsed = time.perf_counter() - start
        if case.mode == "open":
            c.quit()
        return elapsed

    def session(i: int) -> None:
        if case.api == "send":
            url, options = one_shot_url(spec)
            smtpx.send(msgs[i % len(msgs)], url=url, sender=SENDER, recipients=rcpts, **options)
            return
        c = new()
        send(c, [msgs[i % len(msgs)]], quit=True)

    session(0)  # warm-up, untimed
    start = time.perf_counter()
    for i in range(spec.count):
        session(i)
    return time.perf_counter() - start


async def async_client(spec: Spec, msgs: list[str]) -> float:
    case = spec.case
    rcpts = [spec.recipient]
    context = ssl.create_default_context(cafile=spec.ca_file) if case.mode == "tls" else None

    async def new() -> Any:
        c: Any
        if case.client == "aiosmtplib":
            c = aiosmtplib.SMTP(
                hostname=HOST,
                port=spec.port,
                local_hostname=LOCAL_HOSTNAME,
                start_tls=False,
                use_tls=False,
                timeout=CLIENT_TIMEOUT,
            )
            await c.connect()
            if context is not None:
                await c.starttls(tls_context=context)
        else:
            c = smtpx.AsyncSMTP(
                HOST, spec.port, local_hostname=LOCAL_HOSTNAME, timeout=CLIENT_TIMEOUT
            )
            await c.connect()
            if context is not None:
                await c.starttls(context=context)
        if context is not None:
            await c.login(spec.user, spec.password)
        return c

    async def send(c: Any, messages: list[str], quit: bool = False) -> None:
        if case.api == "sendmail":
            for m in messages:
                result = await c.sendmail(SENDER, rcpts, m)
                check(result[0] if case.client == "aiosmtplib" else result, "sendmail")
        elif case.api == "deliver":
            for m in messages:
                await c.deliver(m, SENDER, rcpts)
        else:
            batch = [(m, SENDER, rcpts) for m in messages]
            check(await c.deliver_many(batch, quit=quit), case.api)
            return
        if quit:
            await c.quit()

    if case.mode in ("open", "batch"):
        c = await new()
        await c.ehlo()
        await send(c, msgs[:1])
        batch = [msgs[i % len(msgs)] for i in range(spec.count)]
        start = time.perf_counter()
        await send(c, batch, quit=case.mode == "batch")
        elapsed = time.perf_counter() - start
        if case.mode == "open":
            await c.quit()
        return elapsed

    async def session(i: int) -> None:
        if case.api == "send":
            url, options = one_shot_url(spec)
            message = msgs[i % len(msgs)]
            await smtpx.asend(message, url=url, sender=SENDER, recipients=rcpts, **options)
            return
        c = await new()
        await send(c, [msgs[i % len(msgs)]], quit=True)

    await session(0)
    start = time.perf_counter()
    for i in range(spec.count):
        await session(i)
    return time.perf_counter() - start


def bare_client(spec: Spec, msgs: list[str]) -> float:
    case = spec.case
    envelopes = [bare.envelope(SENDER, spec.recipient)]
    contents = [bare.encode(m) for m in msgs]
    if case.mode in ("open", "batch"):
        c = bare.Bare(HOST, spec.port, timeout=CLIENT_TIMEOUT)
        c.send(case.api, envelopes, contents[:1], 1)  # warm-up
        start = time.perf_counter()
        c.send(case.api, envelopes, contents, spec.count, quit=case.mode == "batch")
        elapsed = time.perf_counter() - start
        if case.mode == "open":
            c.command(b"QUIT\r\n")
        c.close()
        return elapsed
    context = ssl.create_default_context(cafile=spec.ca_file) if case.mode == "tls" else None
    auth = (spec.user, spec.password) if case.mode == "tls" else None

    def session(i: int) -> None:
        c = bare.Bare(HOST, spec.port, context=context, auth=auth, timeout=CLIENT_TIMEOUT)
        c.send("bdat1", envelopes, contents[i % len(contents) :][:1], 1, quit=True)

    session(0)
    start = time.perf_counter()
    for i in range(spec.count):
        session(i)
    return time.perf_counter() - start


def child(spec: Spec) -> None:
    msgs = [small_message(i) for i in range(16)]
    if spec.case.client == "bare":
        elapsed = bare_client(spec, msgs)
    elif spec.case.client in ASYNC:
        elapsed = asyncio.run(async_client(spec, msgs))
    else:
        elapsed = sync_client(spec, msgs)
    print(json.dumps({"seconds": elapsed, "units": spec.count}))


# ---------------------------------------------------------------------------------------
# Parent: servers, proxies, schedule, report.
# ---------------------------------------------------------------------------------------


def run_child(spec: Spec) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(asdict(spec))]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT} s"}
    if p.returncode != 0:
        tail = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return {"error": tail}
    result: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def spec_from_json(text: str) -> Spec:
    data = json.loads(text)
    data["case"] = Case(**data["case"])
    return Spec(**data)


class Results:
    def __init__(self, rtt: float) -> None:
        self.rtt = rtt
        self.runs: dict[Case, list[dict[str, Any]]] = {}

    def add(self, case: Case, result: dict[str, Any]) -> None:
        self.runs.setdefault(case, []).append(result)

    def per_unit(self, case: Case) -> float | None:
        """Median round trips per unit (message or session), or None if never measured."""
        ok = [
            r["seconds"] / r["units"] / self.rtt
            for r in self.runs.get(case, [])
            if "error" not in r
        ]
        return statistics.median(ok) if ok else None

    def spread(self, case: Case) -> str:
        ok = [
            r["seconds"] / r["units"] / self.rtt
            for r in self.runs.get(case, [])
            if "error" not in r
        ]
        return f"{min(ok):.2f}-{max(ok):.2f}" if ok else "-"

    def failed(self, case: Case) -> int:
        return sum("error" in r for r in self.runs.get(case, []))

    def cell(self, case: Case, scale: float = 1.0) -> str:
        value = self.per_unit(case)
        text = "-" if value is None else f"{value * scale:.2f}"
        if self.failed(case):
            text += f" [{self.failed(case)} failed]"
        return text

    def ratio(self, case: Case) -> float | None:
        value, floor = self.per_unit(case), self.per_unit(matching_bare(case))
        return value / floor if value is not None and floor else None


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def report(res: Results, cases: list[Case], counts: dict[str, int]) -> str:
    servers = [s for s in SERVER_LABEL if any(c.server == s for c in cases)]
    out: list[str] = []

    def table(mode: str, rows: list[tuple[str, str]], title: str, scale: float = 1.0) -> None:
        present = [
            (c, a) for c, a in rows if any(k == Case(mode, s, c, a) for k in cases for s in servers)
        ]
        if not present:
            return
        head = ["client", "API"]
        for s in servers:
            head += [SERVER_LABEL[s], "x bare"]
        out.extend(["", title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)])
        for client, api in present:
            row = [LABEL[client], api if client != "bare" else f"`{api}`"]
            for s in servers:
                case = Case(mode, s, client, api)
                if case not in cases:
                    row += ["", ""]
                    continue
                row += [
                    res.cell(case, scale),
                    "" if client == "bare" else fmt_ratio(res.ratio(case)),
                ]
            out.append("| " + " | ".join(row) + " |")

    bare_open = [("bare", k) for k in ("data", "pipe", "bdat1", "bdat8")]
    table(
        "open",
        REAL + bare_open,
        f"On one open connection: round trips per message ({counts['open']} messages after "
        "connect + EHLO; x bare: over `bdat1` with CHUNKING and `data` without, or for "
        "`deliver_many` over `bdat8` and `pipe`)",
    )
    table(
        "batch",
        [
            ("smtpx", "deliver_many"),
            ("smtpx-async", "deliver_many"),
            ("bare", "pipe"),
            ("bare", "bdat8"),
        ],
        f"One batch with QUIT (`deliver_many(..., quit=True)` of {counts['batch']} items, "
        "QUIT's reply included): round trips for the whole batch",
        scale=counts["batch"],
    )
    sessions = [c for c in cases if c.mode in ("session", "tls")]
    if sessions:
        head = ["client", "API", "plain", "x bare", "STARTTLS + AUTH", "x bare"]
        out.extend(
            [
                "",
                f"Whole sessions against Postfix, connect ... QUIT with one message: round "
                f"trips per session ({counts['session']} sessions per run, median over runs)",
                "",
                "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head),
            ]
        )
        one_shot = [("smtpx", "send"), ("smtpx-async", "send")]
        for client, api in [*REAL, *one_shot, ("bare", "session")]:
            row = [LABEL[client], api]
            for mode in ("session", "tls"):
                case = Case(mode, "postfix", client, api)
                if case not in cases:
                    row += ["", ""]
                    continue
                row += [res.cell(case), "" if client == "bare" else fmt_ratio(res.ratio(case))]
            out.append("| " + " | ".join(row) + " |")

    targets = [
        ("`deliver()`, open connection, CHUNKING", "open", "postfix", "deliver", 1.15),
        ("`deliver_many()`, default window, no CHUNKING", "open", "sink", "deliver_many", 1.15),
        (
            "`deliver_many()`, default window, CHUNKING (bare: 8 in flight)",
            "open",
            "postfix",
            "deliver_many",
            1.25,
        ),
    ]
    # Issue 10: the one-shot send, STARTTLS + AUTH PLAIN, against the bare session.
    targets.append(("one-shot `send()`, STARTTLS + AUTH", "tls", "postfix", "send", 1.15))
    lines = []
    for label, mode, server, api, limit in targets:
        for client in ("smtpx", "smtpx-async"):
            case = Case(mode, server, client, api)
            if case not in cases:
                continue
            r = res.ratio(case)
            verdict = "-" if r is None else ("met" if r <= limit else "MISSED")
            lines.append(
                f"| {label} | {LABEL[client]} | {res.cell(case)} | "
                f"{res.cell(matching_bare(case))} | {fmt_ratio(r)} | <= {limit:.2f}x | {verdict} |"
            )
    if lines:
        out.extend(
            [
                "",
                "Targets (issues 9 and 10), ratio of round trips to the bare client in the same "
                "run:",
                "",
                "| target | client | round trips | bare | ratio | limit | |",
                "|---|---|---|---|---|---|---|",
                *lines,
            ]
        )
    return "\n".join(out).lstrip("\n")


def trace_case(spec: Spec, upstream: tuple[str, int], rtt: float) -> None:
    """Run one case once through a tracing proxy and print the transcript."""
    trace: list[tuple[float, str, bytes | None]] = []
    with proxy.DelayProxy(upstream, rtt, trace=trace) as p:
        result = run_child(
            Spec(
                spec.case,
                p.port,
                spec.recipient,
                spec.count,
                spec.ca_file,
                spec.user,
                spec.password,
            )
        )
    print(f"{spec.case.name}: {result}")
    if not trace:
        return
    t0 = trace[0][0]
    for when, side, data in trace:
        arrow = "C->S" if side == "C" else "S->C"
        if data is None:
            print(f"{(when - t0) / rtt:7.2f} RTT  {arrow}  <EOF>")
            continue
        # What a chunk holds: transactions started (MAIL) or replies, then its start.
        if side == "C":
            summary = f"{data.lower().count(b'mail from:')} MAIL"
        else:
            summary = f"{data.count(NEWLINE)} replies"
        start = repr(data[:50])
        print(f"{(when - t0) / rtt:7.2f} RTT  {arrow}  {len(data):6d} bytes  {summary:10s} {start}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rtt", type=float, default=20.0, help="round-trip time added, ms (20)")
    ap.add_argument("--runs", type=int, default=None, help="rounds (default 3, --quick 1)")
    ap.add_argument("--quick", action="store_true", help="fewer messages and one round")
    ap.add_argument("--server", nargs="+", choices=list(SERVER_LABEL), default=list(SERVER_LABEL))
    ap.add_argument("--mode", nargs="+", choices=["open", "batch", "session", "tls"], default=None)
    ap.add_argument(
        "--client", nargs="+", choices=list(LABEL), default=None, help="subset (bare is always run)"
    )
    ap.add_argument("--trace", metavar="MODE/SERVER/CLIENT/API", help="print one case's transcript")
    ap.add_argument("--json", metavar="PATH", help="also write every run's raw result here")
    ap.add_argument("--child", metavar="SPEC", help="internal")
    args = ap.parse_args()

    if args.child:
        child(spec_from_json(args.child))
        return 0

    import servers  # needs the repository's tests/ (the Postfix harness) and root

    rtt = args.rtt / 1000
    runs = max(1, args.runs if args.runs is not None else (1 if args.quick else 3))
    counts = (
        {"open": 10, "batch": 5, "session": 2}
        if args.quick
        else {"open": 40, "batch": 20, "session": 5}
    )
    cases = [
        c
        for c in all_cases(args.server)
        if (args.mode is None or c.mode in args.mode)
        and (args.client is None or c.client in args.client or c.client == "bare")
    ]
    print(f"smtpx from {os.path.dirname(smtpx.__file__)}", file=sys.stderr)
    if not proxy.self_check(rtt, out=lambda s: print(s, file=sys.stderr)):
        print("warning: the delay proxy is off its RTT; figures are suspect", file=sys.stderr)

    res = Results(rtt)
    crashed = False
    started = time.monotonic()
    wanted = {c.server for c in cases}
    if args.trace:
        parts = args.trace.split("/")
        if len(parts) != 4 or parts[1] not in SERVER_LABEL:
            ap.error("--trace MODE/SERVER/CLIENT/API, e.g. open/postfix/smtpx/deliver")
        wanted = {parts[1]}
    with contextlib.ExitStack() as stack:
        upstream: dict[str, tuple[str, int]] = {}
        ca_file = ""
        if "postfix" in wanted:
            pf = stack.enter_context(servers.postfix())
            upstream["postfix"], ca_file = (pf.host, pf.port), str(pf.ca_file)
        if "sink" in wanted:
            upstream["sink"] = (HOST, stack.enter_context(servers.sink(HOST)))
        recipient = {"postfix": servers.RECIPIENT, "sink": SINK_RECIPIENT}

        def spec(case: Case, port: int) -> Spec:
            count = counts["session" if case.mode == "tls" else case.mode]
            return Spec(
                case,
                port,
                recipient[case.server],
                count,
                ca_file,
                servers.AUTH_USER,
                servers.AUTH_PASSWORD,
            )

        if args.trace:
            traced = Case(*args.trace.split("/"))
            trace_case(spec(traced, 0), upstream[traced.server], rtt)
            return 0
        proxies = {s: proxy.DelayProxy(upstream[s], rtt) for s in wanted}
        for p in proxies.values():
            p.start()
        try:
            for rnd in range(runs):
                shift = rnd * len(cases) // runs  # rotate the order from round to round
                for case in cases[shift:] + cases[:shift]:
                    r = run_child(spec(case, proxies[case.server].port))
                    res.add(case, r)
                    if "error" in r:
                        crashed = True
                        print(f"  {case.name}: ERROR {r['error']}", file=sys.stderr)
                print(
                    f"round {rnd + 1}/{runs} done ({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                )
        finally:
            for p in proxies.values():
                p.stop()

    print(
        f"\n{args.rtt:g} ms RTT added by bench/proxy.py on loopback, 1 KB messages, one "
        f"recipient, median of {runs} interleaved run(s); Python {sys.version.split()[0]}, "
        f"aiosmtplib {aiosmtplib.__version__}, smtpx {smtpx.__version__}.  Round trips = "
        f"elapsed / RTT.\n"
    )
    print(report(res, cases, counts))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({c.name: v for c, v in res.runs.items()}, f, indent=1)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
