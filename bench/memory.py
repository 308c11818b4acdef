"""Memory benchmark: the daemon's peak RSS while it ingests 25 MB messages, with many agents.

    .venv/bin/python -m bench.memory [--megabytes 24.9] [--agents 10] [--shape text|pdf|both]
                                     [--top 8]

Two shapes of message: `pdf` (a short text and a large PDF attachment, base64) and `text` (the
whole size is text, a log pasted into the mail: every agent notice quotes the text). With
`--agents N` the config has N agents (the shipped two and more), so a new ticket sends N notices.

1. The real daemon (`python -m mailbot run`, SMTP listener on a free port, outbound to an SMTP
   sink from tests/servers.py, MALLOC_MMAP_THRESHOLD_ as systemd/mailbot.service sets it) in a
   temporary directory: VmRSS and VmHWM at idle; then the high-water mark is reset (`5` into
   /proc/<pid>/clear_refs) and the message goes in through SMTP; once it is processed and the
   ack and every agent notice reached the sink, VmHWM is the peak this message caused.
   "Two concurrent": two such messages (two customers) sent by two SMTP clients at the same
   moment into a fresh daemon, as two relays would deliver them. The listener holds both DATA
   at once and stores them one after the other; the worker processes them one after the
   other while the sender delivers the first one's notices.
2. The same message in a fresh child process, without the daemon: `accept` (store the raw
   bytes), then `process_pending`, then `deliver_due` (the outbox into a maildir), each with
   its own RSS high-water mark, and once more under tracemalloc to tell Python allocations
   from SQLite's and the allocator's, with the peak of each pipeline step and the largest
   allocations alive right after parsing.

Issue 16's targets, printed beside the figures and never asserted: a 25 MB message with 10
agents under 300 MB peak RSS, two at once under 400 MB.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import random
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bench.steps import Wrapper, wrapped_steps
from mailbot import config as config_module
from mailbot import worker
from mailbot.context import database_path, open_context
from mailbot.intake import accept
from mailbot.outbox import deliver_due, make_transport
from tests.daemon_helpers import DaemonProcess, daemon_settings, wait_until
from tests.helpers import ROOT, write_config
from tests.servers import SmtpSink

TARGET_MB = 300.0
TARGET_TWO_MB = 400.0
CUSTOMER = "jan.kowalski@firma.pl"
CUSTOMERS = (CUSTOMER, "ewa.zielinska@firma.pl")
SUPPORT = "pomoc@4dustry.com"
MB = 1024 * 1024  # RSS in MiB, as top and ps count it; message sizes in MB (10^6) like SIZE


# No word of a [[topics]] keyword: the ticket goes to every agent, not to one topic's.
LOG_LINE = (
    "2026-12-01 07:{m:02d}:{s:02d} linia-3 sterownik PLC: przekroczony czas odpowiedzi"
    " czujnika nr {n} (próba ponowienia)\n"
)


def big_message(size: int, seed: int = 2026, shape: str = "pdf", customer: str = CUSTOMER) -> bytes:
    """A customer's message of about `size` bytes.

    `pdf`: a few lines and a PDF that fills the rest. base64 turns 57 bytes into a
    76-character line plus CRLF, so the attachment gets 57/78 of what is left after the
    headers and text. Random bytes, as a compressed PDF would be.
    `text`: a few lines and a controller's log pasted below them, about `size` bytes of text
    (quoted-printable for its Polish letters, as mail clients send it).
    """
    rng = random.Random(seed)
    if shape == "text":
        lines, total, n = [], 0, 0
        while total < size:  # quoted-printable: ó as =C3=B3
            line = LOG_LINE.format(m=n // 60 % 60, s=n % 60, n=n)
            lines.append(line)
            total += len(line.encode()) + 8
            n += 1
        log = "".join(lines)
    else:
        log = ""

    def build(payload: int) -> bytes:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = f"Klient <{customer}>"
        msg["To"] = SUPPORT
        msg["Subject"] = "Dokumentacja techniczna linii montażowej"
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<memory.{rng.getrandbits(64):x}@firma.pl>"
        msg.set_content(
            "Dzień dobry,\n\nw załączeniu pełna dokumentacja techniczna linii, o którą Państwo"
            " prosili. Proszę o potwierdzenie otrzymania.\n\nPozdrawiam\nJan Kowalski\n\n" + log,
            cte="quoted-printable",
        )
        if shape == "text":
            return msg.as_bytes()
        msg.add_attachment(
            random.Random(seed).randbytes(payload),
            maintype="application",
            subtype="pdf",
            filename="dokumentacja-linii.pdf",
        )
        return msg.as_bytes()

    overhead = len(build(0))
    if shape == "text":
        return build(0)
    return build((size - overhead) * 57 // 78)


def agents_toml(count: int) -> str:
    """[[agents]] tables that bring the shipped config's two agents up to `count`."""
    return "".join(
        f'\n[[agents]]\nemail = "agent{n}@4dustry.com"\nname = "Agent {n}"\n'
        for n in range(3, count + 1)
    )


def status_mib(pid: int | str = "self") -> dict[str, float]:
    """VmRSS, VmHWM and the other Vm* lines of /proc/<pid>/status, in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key.startswith("Vm") or key.startswith("Rss"):
            out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak(pid: int | str = "self") -> bool:
    """Set VmHWM back to the current RSS (Linux ≥ 4.0); False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -------------------------------------------------------------------------------- the daemon


def measure_daemon(raws: list[bytes], agents: int) -> dict[str, Any]:
    """The daemon's peak while `raws` (one message per customer of CUSTOMERS) arrive at once."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")  # as systemd/mailbot.service
    with tempfile.TemporaryDirectory(prefix="mailbot-memory-") as tmp, SmtpSink(tls=False) as sink:
        config = write_config(Path(tmp), agents_toml(agents), settings=daemon_settings(sink))
        daemon = DaemonProcess(config)
        try:
            daemon.start()  # inside: a slow start on a busy machine leaves no daemon behind
            assert daemon.proc is not None
            pid = daemon.proc.pid
            time.sleep(2)  # scheduler, sender and worker have started and gone idle
            idle = status_mib(pid)
            reset = reset_peak(pid)
            started = time.perf_counter()
            accepted: list[float] = []

            def send(customer: str, raw: bytes) -> None:
                cfg = daemon.cfg
                with smtplib.SMTP(cfg.smtp.host, cfg.smtp.port, timeout=300) as smtp:
                    smtp.sendmail(customer, [SUPPORT], raw)
                accepted.append(time.perf_counter() - started)

            senders = [
                threading.Thread(target=send, args=(customer, raw))
                for customer, raw in zip(CUSTOMERS, raws, strict=False)
            ]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            expected = len(raws) * (1 + agents)  # an ack and a notice to every agent each
            acked = wait_until(lambda: len(sink.messages) >= expected, 900, "acks and notices")
            done = time.perf_counter() - started
            time.sleep(0.5)
            after = status_mib(pid)
            db = database_path(daemon.cfg)
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            status = conn.execute("SELECT status, size FROM inbound ORDER BY id DESC").fetchone()
            conn.close()
            sent = len(sink.messages)
        finally:
            daemon.stop()
    return {
        "idle": idle, "after": after, "reset": reset, "accepted": max(accepted), "done": done,
        "acked": bool(acked), "status": status, "sent": sent,
    }  # fmt: skip


# -------------------------------------------------------------------------------- in-process


def step_tracer(peaks: dict[str, float], snapshots: dict[str, Any], top: int) -> Wrapper:
    """A wrapper for the worker's steps: each step's tracemalloc peak, a snapshot after parsing.

    Each step resets tracemalloc's peak, so the overall peak is kept here ("overall").
    """
    peaks["overall"] = 0.0

    def traced(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            start, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            result = func(*args)
            _, peak = tracemalloc.get_traced_memory()
            peaks[name] = (peak - start) / MB
            peaks["overall"] = max(peaks["overall"], peak / MB)
            if name == "parse":  # what parsing leaves alive for the later steps
                stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
                snapshots["after parse"] = [(str(s.traceback), s.size / MB) for s in stats]
            return result

        return run

    return traced


def child(directory: Path, mode: str, top: int, agents: int) -> None:
    """In a fresh process: accept the message, process_pending, deliver_due into a maildir;
    prints JSON figures."""
    cfg = config_module.load(write_config(directory, agents_toml(agents)))
    ctx = open_context(cfg)
    now = datetime.now(UTC)
    raw = (directory / "message.eml").read_bytes()
    out: dict[str, Any] = {"start": status_mib()}
    reset_peak()
    accept(ctx.store, raw, source="import", now=now)
    out["accept"] = status_mib()
    del raw  # the daemon's intake drops its copy too; process_pending reads its own
    before = status_mib()
    reset_peak()
    peaks: dict[str, float] = {}
    snapshots: dict[str, Any] = {}
    tracing = (
        wrapped_steps(step_tracer(peaks, snapshots, top)) if mode == "trace" else nullcontext()
    )
    if mode == "trace":
        tracemalloc.start()
    started = time.perf_counter()
    with tracing:
        counts = worker.process_pending(ctx, now)
    out["seconds"] = time.perf_counter() - started
    if mode == "trace":
        out["traced_peak"] = max(peaks.pop("overall"), tracemalloc.get_traced_memory()[1] / MB)
        tracemalloc.stop()
    out.update(before=before, after=status_mib(), steps=peaks, snapshots=snapshots)
    out["processed"] = counts.processed
    reset_peak()
    before_delivery = status_mib()
    if mode == "trace":
        tracemalloc.start()
    report = deliver_due(ctx, make_transport(cfg), now)
    if mode == "trace":
        out["traced_delivery"] = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    out.update(before_delivery=before_delivery, delivered=status_mib(), sent=report.sent)
    # What stays after the message: freed Python objects vs memory the allocators keep.
    gc.collect()
    out["after_gc"] = status_mib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    out["after_trim"] = status_mib()
    ctx.close()
    print(json.dumps(out))


def run_child(raw: bytes, mode: str, top: int, agents: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mailbot-memory-") as tmp:
        (Path(tmp) / "message.eml").write_bytes(raw)
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", tmp, "--mode", mode,
             "--top", str(top), "--agents", str(agents)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


# -------------------------------------------------------------------------------- report


def report_daemon(d: dict[str, Any], target: float) -> float:
    idle, after = d["idle"], d["after"]
    print(f"  idle:    VmRSS {idle['VmRSS']:6.1f}, VmHWM {idle['VmHWM']:6.1f}")
    peak_note = "since the reset at send" if d["reset"] else "since start (no clear_refs)"
    print(
        f"  after:   VmHWM {after['VmHWM']:6.1f} ({peak_note}), VmRSS {after['VmRSS']:6.1f};"
        f" peak − idle RSS {after['VmHWM'] - idle['VmRSS']:+.1f}"
    )
    print(
        f"  250 after {d['accepted']:.2f} s, acks and notices at the sink ({d['sent']}) after"
        f" {d['done']:.2f} s; last inbound row {d['status'][0]} ({d['status'][1] / 1e6:.2f} MB)"
    )
    peak_mb = after["VmHWM"] * MB / 1e6
    met = "met" if peak_mb < target else "NOT met"
    print(
        f"  target: peak RSS < {target:.0f} MB → {peak_mb:.1f} MB ({after['VmHWM']:.1f} MiB): {met}"
    )
    return peak_mb


def report_child(raw: bytes, top: int, agents: int) -> None:
    rss = run_child(raw, "rss", top, agents)
    trace = run_child(raw, "trace", top, agents)
    print("\n  in-process (fresh child, no daemon), MiB:")
    print(f"    start:            VmRSS {rss['start']['VmRSS']:6.1f}")
    print(
        f"    accept:           VmHWM {rss['accept']['VmHWM']:6.1f}"
        f" (raw bytes read from file, stored in SQLite)"
    )
    rise = rss["after"]["VmHWM"] - rss["before"]["VmRSS"]
    print(
        f"    process_pending:  VmHWM {rss['after']['VmHWM']:6.1f} over VmRSS"
        f" {rss['before']['VmRSS']:6.1f} before → {rise:+.1f}"
        f" in {rss['seconds']:.2f} s ({rss['processed']} processed)"
    )
    rise = rss["delivered"]["VmHWM"] - rss["before_delivery"]["VmRSS"]
    print(
        f"    deliver_due:      VmHWM {rss['delivered']['VmHWM']:6.1f} over VmRSS"
        f" {rss['before_delivery']['VmRSS']:6.1f} before → {rise:+.1f} ({rss['sent']} sent)"
    )
    print(
        f"    tracemalloc peak (Python objects): process_pending {trace['traced_peak']:.1f},"
        f" deliver_due {trace['traced_delivery']:.1f}; the rest of the RSS rise is SQLite,"
        " the allocator and the interpreter"
    )
    print(
        f"    RSS after processing: {rss['after']['VmRSS']:.1f}; after gc.collect()"
        f" {rss['after_gc']['VmRSS']:.1f}; after malloc_trim(0) {rss['after_trim']['VmRSS']:.1f}"
    )
    print("    tracemalloc peak per step, above what the step started with:")
    for name, peak in trace["steps"].items():
        print(f"      {name:28} {peak:7.1f}")
    print("    largest Python allocations alive right after parsing:")
    for where, size in trace["snapshots"].get("after parse", []):
        if size >= 0.1:  # the long tail is header objects, a few kB each
            print(f"      {size:7.1f}  {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.9, help="message size, 10^6 bytes")
    parser.add_argument("--agents", type=int, default=10, help="agents told of a new ticket")
    parser.add_argument("--shape", choices=("text", "pdf", "both"), default="both")
    parser.add_argument("--no-child", action="store_true", help="the daemon's figures only")
    parser.add_argument("--top", type=int, default=8, help="allocation sites to list")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="rss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode, args.top, args.agents)
        return
    size = int(args.megabytes * 1_000_000)
    summary = []
    for shape in ("text", "pdf") if args.shape == "both" else (args.shape,):
        raws = [big_message(size, seed, shape, customer) for seed, customer in enumerate(CUSTOMERS)]
        what = "text only" if shape == "text" else "one PDF attachment"
        print(
            f"\n=== shape {shape}: {len(raws[0]) / 1e6:.2f} MB raw ({len(raws[0]) / MB:.1f} MiB),"
            f" {what}; {args.agents} agents"
        )
        print("\n  daemon, one message (python -m mailbot run; SMTP in, SMTP sink out), MiB:")
        one = report_daemon(measure_daemon(raws[:1], args.agents), TARGET_MB)
        print("\n  daemon, two messages sent at once by two SMTP clients, MiB:")
        two = report_daemon(measure_daemon(raws, args.agents), TARGET_TWO_MB)
        summary.append((shape, one, two))
        if not args.no_child:
            report_child(raws[0], args.top, args.agents)
    print(
        f"\nsummary, peak RSS in MB ({args.agents} agents; targets {TARGET_MB:.0f} / "
        f"{TARGET_TWO_MB:.0f}):"
    )
    for shape, one, two in summary:
        print(f"  {shape:5} one message {one:7.1f}   two at once {two:7.1f}")


if __name__ == "__main__":
    main()
