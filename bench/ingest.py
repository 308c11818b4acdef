"""Ingest benchmark: messages/second through the whole pipeline next to bare stdlib parsing.

    .venv/bin/python -m bench.ingest [--count 10000] [--rounds 1] [--profile]

The same synthetic messages (bench/traffic.py, fixed seed) are (1) parsed bare with
`email.message_from_bytes(raw, policy=policy.default)` plus body extraction, and (2) imported
into a fresh mailbot database and processed: store raw, parse, classify, thread, write ticket,
message, events, ack and agent notifications to the outbox. Prints figures; asserts nothing.
With `--rounds N` the import and the pipeline run N times on fresh databases and the best
round counts, in wall-clock and in CPU time: on a shared or virtual machine single runs of the
same code vary by ±15%, and the best of several is what tells two versions apart.
"""

from __future__ import annotations

import argparse
import cProfile
import email
import pstats
import tempfile
import time
from datetime import UTC, datetime
from email import policy
from pathlib import Path

from bench.traffic import NO_FLOOD_LIMITS, messages
from mailbot import config as config_module
from mailbot.context import open_context
from mailbot.intake import accept
from mailbot.worker import process_pending
from tests.helpers import write_config


def bare_parse(raws: list[bytes]) -> float:
    """Seconds for the stdlib floor: parse with policy.default and extract the text body."""
    started = time.perf_counter()
    for raw in raws:
        msg = email.message_from_bytes(raw, policy=policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))
        if body is not None:
            body.get_content()
    return time.perf_counter() - started


def mailbot_ingest(
    raws: list[bytes], directory: Path, profile: bool
) -> tuple[float, float, float, int]:
    """(intake seconds, pipeline seconds, pipeline CPU seconds, tickets) for a fresh database."""
    cfg = config_module.load(write_config(directory, settings=NO_FLOOD_LIMITS))
    ctx = open_context(cfg)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    started = time.perf_counter()
    with ctx.store.atomic():  # an import acknowledges nobody: one commit for the batch
        for raw in raws:
            accept(ctx.store, raw, source="import", now=now)
    intake = time.perf_counter() - started
    profiler = cProfile.Profile() if profile else None
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    process_pending(ctx, now)
    if profiler:
        profiler.disable()
    pipeline, cpu = time.perf_counter() - started, time.process_time() - cpu
    tickets = ctx.store.count("tickets")
    ctx.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return intake, pipeline, cpu, tickets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1, help="best of N fresh runs")
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline")
    args = parser.parse_args()
    raws = list(messages(args.count))
    size = sum(map(len, raws)) / len(raws)
    print(f"{len(raws)} synthetic messages, {size / 1024:.1f} KiB on average")
    bare = bare_parse(raws)
    results = []
    for _ in range(max(1, args.rounds)):
        with tempfile.TemporaryDirectory() as directory:
            results.append(mailbot_ingest(raws, Path(directory), args.profile))
    intake = min(r[0] for r in results)
    pipeline = min(r[1] for r in results)
    cpu = min(r[2] for r in results)
    tickets = results[0][3]
    total = intake + pipeline
    n = len(raws)
    print(f"bare parse (policy.default + body):  {n / bare:8.0f} msg/s")
    print(f"mailbot intake (store raw):          {n / intake:8.0f} msg/s")
    print(f"mailbot pipeline (parse→outbox):     {n / pipeline:8.0f} msg/s")
    print(f"mailbot pipeline, CPU time:          {n / cpu:8.0f} msg/s")
    print(f"mailbot ingest, intake + pipeline:   {n / total:8.0f} msg/s  ({tickets} tickets)")
    print(f"ratio ingest / bare parse:           {bare / total:8.2f}")


if __name__ == "__main__":
    main()
