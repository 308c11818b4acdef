"""Memory benchmark: the daemon's peak RSS while it ingests one 25 MB message.

    .venv/bin/python -m bench.memory [--megabytes 24.9] [--top 8]

1. The real daemon (`python -m mailbot run`, SMTP listener on a free port, outbound to an SMTP
   sink from tests/servers.py) in a temporary directory: VmRSS and VmHWM at idle; then the
   high-water mark is reset (`5` into /proc/<pid>/clear_refs) and one message of `--megabytes`
   MB (a short text and a large PDF attachment, base64) goes in through SMTP; once it is
   processed and its ack reached the sink, VmHWM is the peak this message caused.
2. The same message in a fresh child process, without the daemon: `accept` (store the raw
   bytes), then `process_pending` alone, each with its own RSS high-water mark, and once more
   under tracemalloc to tell Python allocations from SQLite's and the allocator's, with the
   peak of each pipeline step and the largest allocations alive right after parsing.

Issue 7's target, printed beside the figures and never asserted: peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import random
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
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
from tests.daemon_helpers import DaemonProcess, daemon_settings, wait_until
from tests.helpers import ROOT, write_config
from tests.servers import SmtpSink

TARGET_MB = 300.0
CUSTOMER = "jan.kowalski@firma.pl"
SUPPORT = "pomoc@4dustry.com"
MB = 1024 * 1024  # RSS in MiB, as top and ps count it; message sizes in MB (10^6) like SIZE


def big_message(size: int, seed: int = 2026) -> bytes:
    """A customer's message of about `size` bytes: a few lines and a PDF that fills the rest.

    base64 turns 57 bytes into a 76-character line plus CRLF, so the attachment gets 57/78 of
    what is left after the headers and text. Random bytes, as a compressed PDF would be.
    """
    rng = random.Random(seed)

    def build(payload: int) -> bytes:
        msg = EmailMessage(policy=SMTP)
        msg["From"] = f"Jan Kowalski <{CUSTOMER}>"
        msg["To"] = SUPPORT
        msg["Subject"] = "Dokumentacja techniczna linii montażowej"
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = f"<memory.{rng.getrandbits(64):x}@firma.pl>"
        msg.set_content(
            "Dzień dobry,\n\nw załączeniu pełna dokumentacja techniczna linii, o którą Państwo"
            " prosili. Proszę o potwierdzenie otrzymania.\n\nPozdrawiam\nJan Kowalski\n"
        )
        msg.add_attachment(
            random.Random(seed).randbytes(payload),
            maintype="application",
            subtype="pdf",
            filename="dokumentacja-linii.pdf",
        )
        return msg.as_bytes()

    overhead = len(build(0))
    raw = build((size - overhead) * 57 // 78)
    return raw


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


def measure_daemon(raw: bytes) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mailbot-memory-") as tmp, SmtpSink(tls=False) as sink:
        daemon = DaemonProcess(write_config(Path(tmp), settings=daemon_settings(sink)))
        daemon.start()
        try:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            time.sleep(2)  # scheduler, sender and worker have started and gone idle
            idle = status_mib(pid)
            reset = reset_peak(pid)
            started = time.perf_counter()
            with smtplib.SMTP(daemon.cfg.smtp.host, daemon.cfg.smtp.port, timeout=120) as smtp:
                smtp.sendmail(CUSTOMER, [SUPPORT], raw)
            accepted = time.perf_counter() - started
            acked = wait_until(
                lambda: any(CUSTOMER in m.rcpt_tos for m in sink.messages), 120, "the ack"
            )
            done = time.perf_counter() - started
            time.sleep(0.5)
            after = status_mib(pid)
            db = database_path(daemon.cfg)
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            status = conn.execute("SELECT status, size FROM inbound ORDER BY id DESC").fetchone()
            conn.close()
        finally:
            daemon.stop()
    return {
        "idle": idle, "after": after, "reset": reset, "accepted": accepted, "done": done,
        "acked": bool(acked), "status": status,
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


def child(directory: Path, mode: str, top: int) -> None:
    """In a fresh process: accept the message, then process_pending; prints JSON figures."""
    cfg = config_module.load(write_config(directory))
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
    # What stays after the message: freed Python objects vs memory the allocators keep.
    gc.collect()
    out["after_gc"] = status_mib()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    out["after_trim"] = status_mib()
    ctx.close()
    print(json.dumps(out))


def run_child(raw: bytes, mode: str, top: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mailbot-memory-") as tmp:
        (Path(tmp) / "message.eml").write_bytes(raw)
        done = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", tmp, "--mode", mode,
             "--top", str(top)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


# -------------------------------------------------------------------------------- report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=24.9, help="message size, 10^6 bytes")
    parser.add_argument("--top", type=int, default=8, help="allocation sites to list")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="rss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.mode, args.top)
        return
    raw = big_message(int(args.megabytes * 1_000_000))
    print(f"message: {len(raw) / 1e6:.2f} MB raw ({len(raw) / MB:.1f} MiB), one PDF attachment")

    d = measure_daemon(raw)
    idle, after = d["idle"], d["after"]
    print("\ndaemon (python -m mailbot run; SMTP in, SMTP sink out), MiB:")
    print(f"  idle:    VmRSS {idle['VmRSS']:6.1f}, VmHWM {idle['VmHWM']:6.1f}")
    peak_note = "since the reset at send" if d["reset"] else "since start (no clear_refs)"
    print(
        f"  after:   VmHWM {after['VmHWM']:6.1f} ({peak_note}), VmRSS {after['VmRSS']:6.1f};"
        f" peak − idle RSS {after['VmHWM'] - idle['VmRSS']:+.1f}"
    )
    print(
        f"  250 after {d['accepted']:.2f} s, ack at the sink after {d['done']:.2f} s;"
        f" inbound row {d['status'][0]} ({d['status'][1] / 1e6:.2f} MB)"
    )
    peak_mb = after["VmHWM"] * MB / 1e6
    print(f"  target: peak RSS < {TARGET_MB:.0f} MB → {peak_mb:.1f} MB ({after['VmHWM']:.1f} MiB)")

    rss = run_child(raw, "rss", args.top)
    trace = run_child(raw, "trace", args.top)
    print("\nin-process (fresh child, no daemon), MiB:")
    print(f"  start:            VmRSS {rss['start']['VmRSS']:6.1f}")
    print(
        f"  accept:           VmHWM {rss['accept']['VmHWM']:6.1f}"
        f" (raw bytes read from file, stored in SQLite)"
    )
    rise = rss["after"]["VmHWM"] - rss["before"]["VmRSS"]
    print(
        f"  process_pending:  VmHWM {rss['after']['VmHWM']:6.1f} over VmRSS"
        f" {rss['before']['VmRSS']:6.1f} before → {rise:+.1f}"
        f" in {rss['seconds']:.2f} s ({rss['processed']} processed)"
    )
    print(
        f"  tracemalloc peak (Python objects) in process_pending: {trace['traced_peak']:.1f};"
        f" the rest of the RSS rise is SQLite, the allocator and the interpreter"
    )
    print(
        f"  RSS after it: {rss['after']['VmRSS']:.1f}; after gc.collect()"
        f" {rss['after_gc']['VmRSS']:.1f}; after malloc_trim(0) {rss['after_trim']['VmRSS']:.1f}"
    )
    print("  tracemalloc peak per step, above what the step started with:")
    for name, peak in trace["steps"].items():
        print(f"    {name:28} {peak:7.1f}")
    print("  largest Python allocations alive right after parsing:")
    for where, size in trace["snapshots"].get("after parse", []):
        if size >= 0.1:  # the long tail is header objects, a few kB each
            print(f"    {size:7.1f}  {where}")


if __name__ == "__main__":
    main()
