"""Scale benchmark: threading lookups, ingest rate, size and daemon RSS with 1k to 1M tickets.

    .venv/bin/python -m bench.scale [--sizes 1000,100000,1000000] [--keep DIR]
                                    [--lookups 20000] [--ingest 2000] [--rounds 3]
                                    [--daemon 1000] [--profile]

For each size N, `mailbot.store.seed.seed_tickets` builds a database of N tickets with a year of
history (bulk: no journal and no fsync while building, indexes made at the end): the rows the
pipeline wrote for sample tickets, copied with each ticket's own customer, times and signed
Message-IDs. The newest 1 % are queued, the others closed, answered or pending. The build is
flushed to disk (os.sync) before anything is measured. The database is then reopened through
mailbot's Store (WAL, synchronous=FULL; no ANALYZE, as shipped) and measured:
- lookups: `Store.ticket_by_message_ids` for customer Message-IDs, our acks (found in
  messages), our agent notifications (found only in the outbox) and unknown IDs, and
  `Store.is_participant`: µs per call in a tight loop, mean and p99;
- ingest: `--ingest` synthetic messages (bench.traffic, a quarter of them replies to the
  database's tickets) through accept + process_pending, as bench/ingest.py does, in `--rounds`
  batches of which the fastest counts, with the time spent in each pipeline step. Between
  batches the outbox is marked sent and the new tickets answered, so each batch meets the
  same backlog;
- size: bytes per ticket after a WAL checkpoint, by table (dbstat);
- daemon: `python -m mailbot run` on the database with an SMTP sink, `--daemon` messages pushed
  through SMTP and processed, VmRSS at idle and VmHWM (peak) from /proc/<pid>/status.

--profile adds SQL time per statement and cProfile of one more ingest batch, rolled back.
Prints figures with issue 7's targets beside them; asserts nothing. Databases live under /tmp
and are removed at the end unless --keep DIR names a directory to leave them in.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import random
import shutil
import smtplib
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from bench.steps import wrapped_steps
from bench.traffic import NO_FLOOD_LIMITS, messages
from mailbot import config as config_module
from mailbot.config import Config
from mailbot.context import database_path, open_context
from mailbot.intake import accept
from mailbot.store import Store
from mailbot.store.seed import seed_tickets
from mailbot.worker import process_pending
from tests.daemon_helpers import DaemonProcess, daemon_settings, wait_until
from tests.helpers import write_config
from tests.servers import SmtpSink

SUPPORT = "pomoc@4dustry.com"
# Issue 7's targets, printed beside the figures (never asserted).
TARGET_RATIO = 0.20  # ingest rate and lookup time at 1M within 20 % of the 1k figures
TARGET_RSS_MB = 150.0
THANKS = {
    "pl": ["Dziękuję, przesyłka dotarła.", "Niestety problem nadal występuje."],
    "en": ["Thank you, the parcel has arrived.", "Unfortunately the problem is still there."],
}

# -------------------------------------------------------------------------------- the database


@dataclass(frozen=True)
class Sampled:
    """A ticket the measurements look up and reply to, as the database holds it."""

    ticket_id: int
    requester: str
    name: str
    subject: str
    language: str
    customer_mid: str  # in messages (the customer's first mail)
    ack_mid: str  # ours: in outbox and in messages
    notice_mid: str  # ours: an agent notification, only in the outbox
    last_ours: str  # the last mail we sent the customer: a reply replies to it


def build(directory: Path, size: int) -> tuple[Config, dict[str, int], float]:
    """A database of `size` tickets in `directory`: (config, rows per table, seconds)."""
    cfg = config_module.load(write_config(directory, settings=NO_FLOOD_LIMITS))
    ctx = open_context(cfg)
    started = time.perf_counter()
    seeded = seed_tickets(ctx, size, now=datetime.now(UTC), bulk=True)
    ctx.close()
    # What the build left in the page cache goes to disk now, so that its writeback cannot
    # slow the fsyncs measured next.
    os.sync()
    return cfg, seeded.rows, time.perf_counter() - started


def samples(store: Store, count: int) -> list[Sampled]:
    """About `count` tickets, evenly over the database, with their Message-IDs."""
    step = max(1, store.scalar("SELECT max(id) FROM tickets") // count)
    rows = store.all(
        "SELECT id, requester, requester_name, subject, language,"
        " (SELECT message_id FROM messages WHERE ticket_id = t.id AND kind = 'customer'"
        "  ORDER BY id LIMIT 1),"
        " (SELECT message_id FROM outbox WHERE ticket_id = t.id AND template = 'ack'),"
        " (SELECT message_id FROM outbox WHERE ticket_id = t.id AND template = 'agent_new'"
        "  ORDER BY id LIMIT 1),"
        " (SELECT message_id FROM outbox WHERE ticket_id = t.id AND to_addr = t.requester"
        "  ORDER BY id DESC LIMIT 1)"
        " FROM tickets t WHERE id % ? = 0 ORDER BY id",
        (step,),
    )
    return [Sampled(*row) for row in rows]


def traffic(samples: list[Sampled], count: int, seed: int, now: datetime) -> list[bytes]:
    """`count` messages: bench.traffic's mix, every fourth one a customer answering mail from
    a ticket of the database (mostly recent ones): four in five to our last message (threads
    by token), the others to their own first mail (threads by the stored Message-ID)."""
    rng = random.Random(f"r{seed}")
    recent = samples[-max(1, len(samples) // 10) :]
    fresh = iter(messages(count - count // 4, seed=seed))
    out = []
    for k in range(count):
        if k % 4 != 3:
            out.append(next(fresh))
            continue
        s = rng.choice(recent) if rng.random() < 0.7 else rng.choice(samples)
        msg = EmailMessage(policy=SMTP)
        msg["From"] = formataddr((s.name, s.requester))
        msg["To"] = SUPPORT
        prefix = "Odp" if s.language == "pl" else "RE"
        msg["Subject"] = f"{prefix}: [4Dustry #{s.ticket_id}] {s.subject}"
        msg["Date"] = format_datetime(now)
        domain = s.requester.split("@")[1]
        msg["Message-ID"] = f"<scale.{seed}.{k}.{rng.getrandbits(48):x}@{domain}>"
        parent = s.last_ours if rng.random() < 0.8 else s.customer_mid
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(dict.fromkeys((s.customer_mid, s.ack_mid, parent)))
        msg.set_content(rng.choice(THANKS[s.language]) + f"\n\n{s.name}\n")
        out.append(msg.as_bytes())
    return out


def table_bytes(path: Path) -> list[tuple[str, int]]:
    """Bytes per table (its indexes folded in), largest first, from SQLite's dbstat."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall())
        sizes: dict[str, int] = defaultdict(int)
        # Page by page: dbstat's own aggregate=TRUE sums wrap at 4 GiB per table (SQLite 3.40).
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            sizes[owner.get(name, name)] += size
    finally:
        conn.close()
    return sorted(sizes.items(), key=lambda kv: -kv[1])


# -------------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class Timing:
    """µs per call: wall-clock mean and p99, and this thread's CPU time per call."""

    mean: float
    p99: float
    cpu: float


def time_calls(call: Callable[..., object], args: list[tuple], rounds: int = 3) -> Timing:
    """The best of `rounds` passes over `args`, after a warm-up that fills SQLite's page cache.

    Best-of-N, and CPU time beside wall time, because other processes on the machine preempt
    single calls; the fastest pass is the one least disturbed.
    """
    for a in args[: len(args) // 10]:
        call(*a)
    best: Timing | None = None
    for _ in range(rounds):
        spent = []
        cpu_started = time.thread_time_ns()
        for a in args:
            started = time.perf_counter_ns()
            call(*a)
            spent.append((time.perf_counter_ns() - started) / 1000)
        cpu = (time.thread_time_ns() - cpu_started) / 1000 / len(args)
        p99 = sorted(spent)[int(0.99 * len(spent))]
        timing = Timing(statistics.fmean(spent), p99, cpu)
        best = timing if best is None or timing.mean < best.mean else best
    assert best is not None
    return best


def measure_lookups(store: Store, samples: list[Sampled], count: int) -> dict[str, Timing]:
    """Each kind of lookup on the same tickets for every size (fixed seed)."""
    rng = random.Random("lookups")
    picks = [rng.choice(samples) for _ in range(count)]
    misses = [f"<{rng.getrandbits(128):032x}@firma{rng.randrange(997)}.pl>" for _ in range(count)]
    by_id = store.messages.ticket_by_message_ids
    return {
        "customer Message-ID (hit)": time_calls(by_id, [([s.customer_mid],) for s in picks]),
        "our ack (messages)": time_calls(by_id, [([s.ack_mid],) for s in picks]),
        "our notification (outbox)": time_calls(by_id, [([s.notice_mid],) for s in picks]),
        "unknown Message-ID (miss)": time_calls(by_id, [([m],) for m in misses]),
        "is_participant": time_calls(
            store.participants.takes_part, [(s.ticket_id, s.requester) for s in picks]
        ),
    }


# -------------------------------------------------------------------------------- ingest


@dataclass
class Ingest:
    rate: float  # messages/s, accept + pipeline, wall clock
    pipeline_rate: float
    cpu_ms: float  # CPU milliseconds per message, accept + pipeline
    new_tickets: int
    steps: dict[str, float]  # µs per message in each pipeline step, and writing the plan
    profile: list[str] = field(default_factory=list)


@contextmanager
def timed_steps() -> Iterator[dict[str, float]]:
    """Wall seconds spent in each pipeline step and in writing plans while the block runs."""
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args)
            finally:
                spent[name] += time.perf_counter() - started

        return run

    with wrapped_steps(timed):
        yield spent


@contextmanager
def statement_times(store: Store) -> Iterator[dict[str, list[float]]]:
    """Total seconds and calls per SQL text of the Store's query methods while the block runs."""
    spent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    def wrap(method: Callable[..., Any], key: Callable[..., str]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args)
            finally:
                entry = spent[" ".join(key(*args).split())]
                entry[0] += time.perf_counter() - started
                entry[1] += 1

        return timed

    for name in ("execute", "one", "all", "scalar"):
        setattr(store, name, wrap(getattr(store, name), lambda sql, *_: sql))
    # insert/update build their SQL inside: named by table.
    store.insert = wrap(store.insert, lambda table, *_: f"INSERT INTO {table}")
    store.update = wrap(store.update, lambda table, *_: f"UPDATE {table} … WHERE id")
    yield spent


def measure_ingest(cfg: Config, raws: list[bytes], *, profile: bool = False) -> Ingest:
    """accept + process_pending as bench/ingest.py does, on the big database.

    With `profile` everything runs inside one transaction that is rolled back (the per-batch
    commits become savepoints), under cProfile and with SQL timed per statement. Otherwise
    the batch stays; its outbox rows are then marked sent, as the daemon's sender would have
    done, and its new tickets answered, as agents would have: the next batch, and the daemon
    measured after, meet the database's backlog and queue, not this batch's.
    """
    ctx = open_context(cfg)
    store = ctx.store
    before, last_ticket = store.one("SELECT count(*), max(id) FROM tickets")
    if profile:
        store.execute("BEGIN")
    profiler = cProfile.Profile()
    now = datetime.now(UTC)
    with statement_times(store) if profile else nullcontext({}) as sql:
        cpu_started, started = time.process_time(), time.perf_counter()
        with store.atomic():  # an import acknowledges nobody: one commit for the batch
            for raw in raws:
                accept(store, raw, source="import", now=now)
        intake = time.perf_counter() - started
        if profile:
            profiler.enable()
        started = time.perf_counter()
        with timed_steps() as steps:
            process_pending(ctx, now)
        pipeline = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        profiler.disable()
    new = store.scalar("SELECT count(*) FROM tickets") - before
    if profile:
        store.execute("ROLLBACK")
    else:
        with store.atomic():
            store.execute(
                "UPDATE outbox SET status = 'sent', sent_at = next_attempt_at, attempts = 1"
                " WHERE status = 'pending'"
            )
            store.execute(
                "UPDATE tickets SET first_response_at = updated_at"
                " WHERE id > ? AND first_response_at IS NULL",
                (last_ticket,),
            )
    ctx.close()
    n = len(raws)
    per_message = {name: spent / n * 1e6 for name, spent in steps.items()}
    result = Ingest(n / (intake + pipeline), n / pipeline, cpu / n * 1000, new, per_message)
    if profile:
        result.profile = ["  SQL by total time (Store methods):"]
        for text, (total, calls) in sorted(sql.items(), key=lambda kv: -kv[1][0])[:10]:
            result.profile.append(
                f"  {total * 1000:8.1f} ms {calls:6d}× {total / calls * 1e6:8.1f} µs  {text[:100]}"
            )
        result.profile.append("  functions by own time:")
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        for (filename, line, func), (_, calls, own, _cum, _) in sorted(
            stats.items(), key=lambda kv: -kv[1][2]
        )[:8]:
            result.profile.append(
                f"  {own * 1000:8.1f} ms {calls:7d}×  {Path(filename).name}:{line} {func}"
            )
    return result


# -------------------------------------------------------------------------------- the daemon


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and friends from /proc/<pid>/status, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Vm") or key.startswith("Rss"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class DaemonFigures:
    deferred: int  # 451 answers to DATA (the bench retried them)
    delivered: int  # mails the sink received (acks, notifications, timer notices)
    fired: int  # timers the daemon fired meanwhile (due since the database was built)
    cpu: float  # daemon CPU seconds from the first message pushed to all sent
    startup: float
    idle_rss: float
    start_hwm: float
    push: float
    drain: float
    peak: float
    after_rss: float


def db_count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def push_smtp(host: str, port: int, raws: list[bytes]) -> int:
    """Send every message over one connection; a 4xx is retried as an MTA would. # of 4xx."""
    deferred = 0
    with smtplib.SMTP(host, port, timeout=120) as smtp:
        for raw in raws:
            for _ in range(100):
                try:
                    smtp.sendmail("bench@firma.pl", [SUPPORT], raw)
                    break
                except smtplib.SMTPDataError as exc:
                    if not 400 <= exc.smtp_code < 500:
                        raise
                    deferred += 1
                    time.sleep(0.05)  # an MTA waits minutes; the daemon is measured, not it
    return deferred


def measure_daemon(directory: Path, raws: list[bytes]) -> DaemonFigures:
    """The real daemon on the database: RSS at idle, then peak RSS over `raws` through SMTP."""
    with SmtpSink(tls=False) as sink:
        config_path = write_config(directory, settings={**daemon_settings(sink), **NO_FLOOD_LIMITS})
        daemon = DaemonProcess(config_path)
        db = database_path(daemon.cfg)
        started = time.perf_counter()
        daemon.start(wait=False)
        try:
            # Not DaemonProcess's 15 s: a start over a big backlog is part of what we measure.
            wait_until(lambda: b"mailbot running" in daemon.log_bytes(), 900, "daemon start")
            startup = time.perf_counter() - started
            time.sleep(3)  # let the first sweep, sender pass and scheduler settle
            assert daemon.proc is not None
            pid = daemon.proc.pid
            idle = status_kb(pid)
            before = db_count(db, "SELECT count(*) FROM inbound")
            cpu_before = cpu_seconds(pid)
            started = time.perf_counter()
            deferred = push_smtp(daemon.cfg.smtp.host, daemon.cfg.smtp.port, raws)
            push = time.perf_counter() - started

            def drained() -> bool:
                return (
                    db_count(db, "SELECT count(*) FROM inbound") >= before + len(raws)
                    and db_count(db, "SELECT count(*) FROM inbound WHERE status = 'pending'") == 0
                    and db_count(db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0
                )

            wait_until(drained, 900, "inbound and outbox drained")
            drain = time.perf_counter() - started
            time.sleep(1)
            after = status_kb(pid)
            delivered, fired = len(sink.messages), daemon.log().count('msg="timer fired"')
            cpu = cpu_seconds(pid) - cpu_before
        finally:
            daemon.stop()
    return DaemonFigures(
        deferred, delivered, fired, cpu, startup, idle["VmRSS"] / 1024, idle["VmHWM"] / 1024, push,
        drain, after["VmHWM"] / 1024, after["VmRSS"] / 1024,
    )  # fmt: skip


# -------------------------------------------------------------------------------- one size


@dataclass
class SizeResult:
    size: int
    build: float
    rows: dict[str, int]
    db_bytes: int
    tables: list[tuple[str, int]]
    lookups: dict[str, Timing]
    ingest: Ingest
    daemon: DaemonFigures | None
    profile: list[str]


def run_size(size: int, directory: Path, args: argparse.Namespace) -> SizeResult:
    directory.mkdir(parents=True)
    cfg, rows, built = build(directory, size)
    print(f"  built in {built:.1f} s", flush=True)
    path = database_path(cfg)
    store = Store(path)  # from here on the shipped settings: WAL, synchronous=FULL
    store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db_bytes, tables = path.stat().st_size, table_bytes(path)
    sampled = samples(store, 20_000)
    lookups = measure_lookups(store, sampled, args.lookups)
    store.close()
    print("  lookups measured; ingesting", flush=True)
    now = datetime.now(UTC)
    # Best of --rounds batches, each of its own mail: the machine is shared, and the least
    # disturbed batch is the one that measures mailbot.
    ingest = max(
        (measure_ingest(cfg, traffic(sampled, args.ingest, 2026 + 10 * k, now))
         for k in range(args.rounds)),
        key=lambda result: result.rate,
    )  # fmt: skip
    profile = []
    if args.profile:  # rolled back: profilers must not touch the figure above
        profile = measure_ingest(
            cfg, traffic(sampled, args.ingest, 2028, now), profile=True
        ).profile
    daemon = None
    if args.daemon:
        print("  ingest measured; starting the daemon", flush=True)
        daemon = measure_daemon(directory, traffic(sampled, args.daemon, 2027, now))
    return SizeResult(size, built, rows, db_bytes, tables, lookups, ingest, daemon, profile)


# -------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return (
        f"{cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()};"
        f" Python {platform.python_version()}; SQLite {sqlite3.sqlite_version};"
        f" load {os.getloadavg()[0]:.1f}"
    )


def report(results: list[SizeResult]) -> None:
    hit_name, miss_name = "customer Message-ID (hit)", "unknown Message-ID (miss)"
    print(f"\nmachine: {machine()}")
    print(
        "\n      size | lookup hit µs  | miss µs        | ingest msg/s | DB bytes/ticket"
        " | daemon peak RSS MB"
    )
    print("           | mean / p99     | mean / p99     | (CPU ms/msg) |                "
          " | (idle RSS)")  # fmt: skip
    for r in results:
        hit, miss = r.lookups[hit_name], r.lookups[miss_name]
        rss = f"{r.daemon.peak:6.1f} ({r.daemon.idle_rss:.1f})" if r.daemon else "-"
        print(
            f"{r.size:>10,} | {hit.mean:5.1f} / {hit.p99:6.1f} | {miss.mean:5.1f} / {miss.p99:6.1f}"
            f" | {r.ingest.rate:4.0f} ({r.ingest.cpu_ms:4.2f}) | {r.db_bytes / r.size:15,.0f}"
            f" | {rss}"
        )
    first, last = results[0], results[-1]
    if len(results) > 1:
        print(f"\ntargets (issue 7), {last.size:,} against {first.size:,} tickets; never asserted:")
        for name in (hit_name, miss_name):
            a, b = first.lookups[name], last.lookups[name]
            print(f"  lookup {name}: ×{b.mean / a.mean:.2f} wall, ×{b.cpu / a.cpu:.2f} CPU"
                  f" (target ≤ ×{1 + TARGET_RATIO:.2f})")  # fmt: skip
        a, b = first.ingest, last.ingest
        print(f"  thread step in the pipeline: ×{b.steps['thread'] / a.steps['thread']:.2f}"
              f" (µs per message, target ≤ ×{1 + TARGET_RATIO:.2f})")  # fmt: skip
        print(f"  ingest rate: ×{b.rate / a.rate:.2f} wall, ×{a.cpu_ms / b.cpu_ms:.2f} by CPU"
              f" (target ≥ ×{1 - TARGET_RATIO:.2f})")  # fmt: skip
    if last.daemon:
        print(f"  daemon peak RSS at {last.size:,}: {last.daemon.peak:.1f} MB"
              f" (target < {TARGET_RSS_MB:.0f} MB)")  # fmt: skip

    print("\nlookups, µs per call: mean / p99 wall (CPU mean), best of 3 passes")
    print(f"  {'':28}" + "".join(f"{r.size:>24,}" for r in results))
    for name in first.lookups:
        timings = [r.lookups[name] for r in results]
        cells = "".join(f"{t.mean:>10.1f} / {t.p99:5.1f} ({t.cpu:4.1f})" for t in timings)
        print(f"  {name:28}{cells}")

    print("\ningest (accept + process_pending):")
    for r in results:
        i = r.ingest
        print(f"  {r.size:>10,}: {i.rate:5.0f} msg/s, pipeline alone {i.pipeline_rate:5.0f}"
              f" msg/s, {i.cpu_ms:.2f} CPU ms/msg, {i.new_tickets} new tickets")  # fmt: skip
    print("\npipeline steps during the ingest, µs per message (wall):")
    print(f"  {'':10}" + "".join(f"{name:>12}" for name in first.ingest.steps))
    for r in results:
        print(f"  {r.size:>10,}" + "".join(f"{v:12.1f}" for v in r.ingest.steps.values()))
    print("\nbuild and size:")
    for r in results:
        rows = ", ".join(f"{t} {n:,}" for t, n in sorted(r.rows.items(), key=lambda kv: -kv[1]))
        print(f"  {r.size:>10,}: built in {r.build:.1f} s; {r.db_bytes / 1e6:,.1f} MB; {rows}")
        parts = ", ".join(f"{name} {b / r.size:,.0f}" for name, b in r.tables[:6])
        print(f"  {'':>10}  bytes/ticket by table with its indexes: {parts}")
    for r in results:
        if d := r.daemon:
            print(f"\ndaemon at {r.size:,} (python -m mailbot run; SMTP in, SMTP sink out):"
                  f" started in {d.startup:.1f} s, idle RSS {d.idle_rss:.1f} MB"
                  f" (HWM {d.start_hwm:.1f}); pushed in {d.push:.1f} s, all processed and sent"
                  f" after {d.drain:.1f} s using {d.cpu:.1f} s of CPU; peak RSS {d.peak:.1f} MB,"
                  f" RSS after {d.after_rss:.1f} MB; {d.delivered} mails delivered,"
                  f" {d.fired} timers fired; {d.deferred} × 451 at DATA (retried)")  # fmt: skip
    for r in results:
        if r.profile:
            print(f"\nprofile at {r.size:,} tickets:")
            print("\n".join(r.profile))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--keep", type=Path, help="build in (and leave the databases in) DIR")
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--ingest", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3, help="ingest batches; the best counts")
    parser.add_argument("--daemon", type=int, default=1_000, help="messages (0: no daemon)")
    parser.add_argument("--profile", action="store_true", help="SQL and cProfile of an ingest")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="mailbot-scale-", dir="/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"databases under {root} ({shutil.disk_usage(root).free / 1e9:.0f} GB free)", flush=True)
    results = []
    try:
        for size in sizes:
            directory = root / f"tickets-{size}"
            if directory.exists():
                shutil.rmtree(directory)  # ours from an earlier --keep run: build afresh
            print(f"{size:,} tickets:", flush=True)
            results.append(run_size(size, directory, args))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    report(results)


if __name__ == "__main__":
    main()
