"""Latency benchmark: SMTP end of DATA → ack at a sink, and IMAP APPEND → ack with IDLE.

    .venv/bin/python -m bench.latency [--rate 50] [--seconds 60] [--count N]
                                      [--smtp/--no-smtp] [--imap/--no-imap] [--senders 4]

Everything is real and on loopback: a `python -m mailbot run` child process with its SMTP
listener on a free port, IMAP (IDLE) against a private Dovecot and outbound SMTP to an
aiosmtpd sink (`tests/servers.py`), all in a temporary directory that is removed at the end.

Each message comes from its own customer address, so the first delivery the sink gets for that
address is the ack (agent notifications go to the agents). Messages are sent on a schedule
(message i at start + i / rate, whatever the previous send cost), over a few SMTP connections
or one IMAP connection. Latency runs from `sendmail` returning (the 250 after DATA) or APPEND
completing to the sink's DATA handler seeing the ack; both ends read the same monotonic clock
in this process. Acks missing after `--drain` seconds are counted as lost. Prints figures next
to the targets of issue 7; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path

from aiosmtpd.smtp import Envelope, Session
from imapclient import IMAPClient

from bench.traffic import (
    EN_BODY,
    EN_SUBJECTS,
    FIRST,
    LAST,
    NO_FLOOD_LIMITS,
    PL_BODY,
    PL_SUBJECTS,
)
from tests.daemon_helpers import DaemonProcess, daemon_settings, wait_until
from tests.helpers import write_config
from tests.servers import Dovecot, SmtpSink, find_dovecot

SUPPORT = "pomoc@4dustry.com"
# Issue 7's targets, printed beside the figures (never asserted).
TARGET_P99 = {"smtp": 0.250, "imap": 1.5}
WARMUP = 5  # messages per channel before measuring: first use imports and compiles templates


# ------------------------------------------------------------------------------ the machine


def machine() -> list[str]:
    """What the figures were measured on, so they can be compared and reproduced."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dovecot = find_dovecot()
    dovecot_version = "not installed"
    if dovecot:
        out = subprocess.run([dovecot, "--version"], capture_output=True, text=True, check=False)
        dovecot_version = out.stdout.split()[0] if out.stdout else "unknown"
    return [
        f"CPU:      {cpu}, {os.cpu_count()} cores",
        f"OS:       {platform.system()} {platform.release()}",
        f"Python:   {platform.python_version()} ({platform.python_implementation()})",
        f"SQLite:   {sqlite3.sqlite_version}",
        f"Dovecot:  {dovecot_version}",
        f"Load:     {os.getloadavg()[0]:.2f} (1-minute average before the run)",
    ]


# ------------------------------------------------------------------------------ the sink


class TimedSink(SmtpSink):
    """The test sink, also noting when each recipient's first message reached DATA."""

    def __init__(self) -> None:
        # No STARTTLS: the daemon is configured for a plain loopback relay, so no certificate.
        super().__init__(tls=False)
        self.arrivals: dict[str, float] = {}
        self._arrived = threading.Condition()

    def _on_data(self, session: Session, envelope: Envelope) -> str:
        # Read the clock before anything else: this is the moment the ack is delivered.
        at = time.perf_counter()
        reply = super()._on_data(session, envelope)
        if reply.startswith("250"):
            with self._arrived:
                for rcpt in envelope.rcpt_tos:
                    self.arrivals.setdefault(rcpt.lower(), at)
                self._arrived.notify_all()
        return reply

    def wait_for_acks(self, addresses: Iterable[str], timeout: float) -> int:
        """Wait (woken by each arrival) until every address got mail; returns how many did."""
        wanted = {address.lower() for address in addresses}
        missing = set(wanted)
        deadline = time.perf_counter() + timeout
        with self._arrived:
            while True:
                missing = {address for address in missing if address not in self.arrivals}
                remaining = deadline - time.perf_counter()
                if not missing or remaining <= 0:
                    return len(wanted) - len(missing)
                self._arrived.wait(remaining)


# ------------------------------------------------------------------------------ traffic


Mail = tuple[str, bytes]  # (customer address, raw message)
Send = Callable[[str, bytes], None]


def customer_mail(channel: str, n: int) -> Mail:
    """(customer address, raw message): a new request, from an address used only once."""
    rng = random.Random(f"{channel}-{n}")  # deterministic per message, like bench.traffic
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    address = f"klient.{channel}{n}@firma{n % 97}.pl"
    polish = rng.random() < 0.7
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = f"{name} <{address}>"
    msg["To"] = SUPPORT
    msg["Subject"] = rng.choice(PL_SUBJECTS if polish else EN_SUBJECTS)
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(f"{channel}{n}", domain="firma.pl")
    msg.set_content((PL_BODY if polish else EN_BODY).format(n=n, name=name))
    return address, msg.as_bytes()


def customer_mails(channel: str, count: int) -> list[Mail]:
    # Built before the clock starts: the timed part of a send is the protocol exchange only.
    return [customer_mail(channel, n) for n in range(count)]


@dataclass
class Sent:
    """One measured message: when it was due, when sending began and when it was accepted."""

    address: str
    due: float
    started: float
    accepted: float


class Schedule:
    """Hands out message numbers with their due times: message i is due at start + i / rate."""

    def __init__(self, count: int, rate: float) -> None:
        self.count = count
        self.rate = rate
        self.start = time.perf_counter() + 0.1  # every sender is ready before the first is due
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, float] | None:
        with self._lock:
            n = self._next
            if n >= self.count:
                return None
            self._next += 1
        return n, self.start + n / self.rate


def wait_until_due(due: float) -> None:
    # Pacing is the one place to sleep: the deadline comes from the schedule, not from the
    # previous send, so a slow send makes the next one start on time rather than later.
    delay = due - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


@dataclass
class Phase:
    """What one channel's run produced."""

    name: str
    rate: float
    connections: int
    sent: list[Sent] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # every attempt, refused ones too
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # each distinct error, first message
    arrived: int = 0
    daemon_cpu: float = 0.0  # CPU seconds the daemon used from the first send to the last ack
    wall: float = 0.0
    load: float = 0.0  # 1-minute load average at the end: other work on the machine skews it


def run_schedule(phase: Phase, mails: list[Mail], send: Send) -> None:
    """Send `mails` on schedule, with `phase.connections` senders in parallel."""
    schedule = Schedule(len(mails), phase.rate)
    lock = threading.Lock()

    def sender() -> None:
        while (item := schedule.take()) is not None:
            n, due = item
            address, raw = mails[n]
            wait_until_due(due)
            started = time.perf_counter()
            try:
                send(address, raw)
            except Exception as exc:  # a refused message is counted, the run goes on
                with lock:
                    phase.starts.append(started)
                    phase.failed += 1
                    phase.errors.setdefault(repr(exc)[:200], n)
                continue
            accepted = time.perf_counter()
            with lock:
                phase.starts.append(started)
                phase.sent.append(Sent(address, due, started, accepted))

    with ThreadPoolExecutor(phase.connections, thread_name_prefix=phase.name) as pool:
        for future in [pool.submit(sender) for _ in range(phase.connections)]:
            future.result()


class SmtpSender:
    """One SMTP connection per sender thread, kept open, reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []

    def send(self, address: str, raw: bytes) -> None:
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is None:
            smtp = self._local.smtp = smtplib.SMTP(self.host, self.port, timeout=30)
            self._all.append(smtp)
        try:
            smtp.sendmail(address, [SUPPORT], raw)
        except (smtplib.SMTPException, OSError):
            self._local.smtp = None
            raise

    def close(self) -> None:
        for smtp in self._all:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


# ------------------------------------------------------------------------------ the phases


def warm_up(send: Send, channel: str, sink: TimedSink, drain: float) -> None:
    """A few messages before measuring, so imports and template compilation are not timed."""
    accepted = []
    for address, raw in customer_mails(channel, WARMUP):
        try:
            send(address, raw)
            accepted.append(address)
        except Exception as exc:  # reported; the measured run shows whether it recurs
            print(f"  warm-up message refused: {exc!r}")
    sink.wait_for_acks(accepted, drain)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(
    phase: Phase, count: int, send: Send, sink: TimedSink, daemon_pid: int, drain: float
) -> Phase:
    """Run the schedule and wait for the acks, noting the daemon's CPU time meanwhile."""
    mails = customer_mails(phase.name, count)
    cpu, began = process_cpu(daemon_pid), time.perf_counter()
    run_schedule(phase, mails, send)
    phase.arrived = sink.wait_for_acks((s.address for s in phase.sent), drain)
    phase.daemon_cpu = process_cpu(daemon_pid) - cpu
    phase.wall = time.perf_counter() - began
    phase.load = os.getloadavg()[0]
    return phase


def smtp_phase(
    daemon: DaemonProcess, sink: TimedSink, count: int, rate: float, senders: int, drain: float
) -> Phase:
    assert daemon.proc is not None
    sender = SmtpSender(daemon.cfg.smtp.host, daemon.cfg.smtp.port)
    try:
        warm_up(sender.send, "warmsmtp", sink, drain)
        phase = Phase("smtp", rate, senders)
        return measured(phase, count, sender.send, sink, daemon.proc.pid, drain)
    finally:
        sender.close()


def imap_phase(
    daemon: DaemonProcess, dovecot: Dovecot, sink: TimedSink, count: int, rate: float, drain: float
) -> Phase:
    assert daemon.proc is not None
    client: IMAPClient = dovecot.client()

    def append(address: str, raw: bytes) -> None:
        client.append("INBOX", raw)

    try:
        warm_up(append, "warmimap", sink, drain)
        phase = Phase("imap", rate, 1)  # APPEND over one persistent connection
        return measured(phase, count, append, sink, daemon.proc.pid, drain)
    finally:
        client.logout()


# ------------------------------------------------------------------------------ report


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "no data"
    return (
        "  ".join(
            f"{label} {percentile(ordered, p) * 1000:7.1f}"
            for label, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
        )
        + "  ms"
    )


def report(phase: Phase, sink: TimedSink, title: str) -> None:
    sent = sorted(phase.sent, key=lambda s: s.started)
    print(f"\n{title}")
    if not sent:
        print(f"  nothing sent ({phase.failed} failed)")
        return
    starts = sorted(phase.starts)
    span = starts[-1] - starts[0]
    achieved = (len(starts) - 1) / span if span > 0 else float("nan")
    print(
        f"  sent {len(starts)} over {span:.1f} s: {achieved:.1f} msg/s achieved"
        f" (asked {phase.rate:g}), {phase.connections} connection(s);"
        f" {len(sent)} accepted, {phase.failed} refused"
    )
    for error, n in phase.errors.items():
        print(f"  refused, first at message {n}: {error}")
    print(f"  start behind schedule    {spread([max(0.0, s.started - s.due) for s in sent])}")
    verb = "sendmail (DATA → 250)" if phase.name == "smtp" else "APPEND round trip    "
    print(f"  {verb}    {spread([s.accepted - s.started for s in sent])}")
    latencies = [
        sink.arrivals[s.address.lower()] - s.accepted
        for s in sent
        if s.address.lower() in sink.arrivals
    ]
    lost = len(sent) - len(latencies)
    print(f"  → ack at sink            {spread(latencies)}")
    target = TARGET_P99[phase.name]
    if latencies:
        p99 = percentile(sorted(latencies), 99)
        verdict = "met" if p99 < target else "MISSED"
        print(
            f"  acks {len(latencies)}/{len(sent)}, lost {lost};"
            f" target p99 < {target * 1000:.0f} ms: {verdict}"
        )
    print(
        f"  daemon CPU {phase.daemon_cpu / len(sent) * 1000:.1f} ms per message"
        f" ({phase.daemon_cpu / phase.wall:.0%} of one core); load average {phase.load:.2f}"
    )


def daemon_problems(daemon: DaemonProcess) -> list[str]:
    """Warnings and errors in the daemon's log, one line per kind with its count and cause."""
    kinds: dict[str, list[str]] = {}
    for line in daemon.log().splitlines():
        if " level=warning " not in line and " level=error " not in line:
            continue
        msg = re.search(r' msg=("[^"]*"|\S+)', line)
        kinds.setdefault(msg.group(1).strip('"') if msg else line[:80], []).append(line)
    summary = []
    for kind, lines in kinds.items():
        first = lines[0]
        detail = re.search(r' (?:error|reason)=("(?:[^"\\]|\\.)*"|\S+)', first)
        # A logged traceback ends in the exception itself ("sqlite3.OperationalError: ...").
        cause = (detail.group(1) if detail else first).rsplit("\\n", 1)[-1].strip('"')[:160]
        summary.append(f"{len(lines)} × {kind}: {cause}")
    return summary


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--count", type=int, help="messages per phase (overrides --seconds)")
    parser.add_argument("--smtp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--imap", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--senders", type=int, default=4, help="SMTP connections in parallel")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for late acks")
    args = parser.parse_args()
    count = args.count or round(args.rate * args.seconds)
    # The sink's arrival stamps and the senders share this process's GIL: a short switch
    # interval keeps a stamp from waiting up to 5 ms (the default) behind a sender thread.
    sys.setswitchinterval(0.0005)

    print("\n".join(machine()))
    print(f"{count} messages per phase at {args.rate:g} msg/s ({count / args.rate:.0f} s)")
    use_imap = args.imap and find_dovecot() is not None
    if args.imap and not use_imap:
        print("IMAP phase skipped: dovecot is not installed (apt-get install dovecot-imapd)")
    with (
        tempfile.TemporaryDirectory(prefix="mailbot-latency-") as directory,
        TimedSink() as sink,
    ):
        dovecot = Dovecot() if use_imap else None
        daemon: DaemonProcess | None = None
        try:
            if dovecot:
                dovecot.start()
            settings = daemon_settings(
                sink,
                dovecot,
                # Production's poll interval: IDLE alone must bring the mail; a short re-poll
                # would cap the IMAP latency and hide an IDLE that never wakes.
                **({"inbound.imap.poll_interval": "60"} if dovecot else {}),
            )
            settings = {**settings, **NO_FLOOD_LIMITS}
            daemon = DaemonProcess(write_config(Path(directory), settings=settings)).start()
            if dovecot:
                wait_until(lambda: 'msg="imap connected"' in daemon.log(), 15, "IMAP login")
            if args.smtp:
                phase = smtp_phase(daemon, sink, count, args.rate, args.senders, args.drain)
                report(phase, sink, "SMTP: end of DATA (250) → ack at the sink")
            if dovecot:
                phase = imap_phase(daemon, dovecot, sink, count, args.rate, args.drain)
                report(phase, sink, "IMAP: APPEND done → ack at the sink (daemon in IDLE)")
            print(f"\nsink received {len(sink.messages)} messages (acks and agent notifications)")
            problems = daemon_problems(daemon)
            print(f"daemon log: {'warnings/errors:' if problems else 'no warnings or errors'}")
            for line in problems:
                print(f"  {line}")
        finally:
            if daemon:
                daemon.stop()
            if dovecot:
                dovecot.close()


if __name__ == "__main__":
    main()
