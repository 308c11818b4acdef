"""Ingest benchmark: messages/second through the whole pipeline next to bare stdlib parsing.

    .venv/bin/python -m bench.ingest [--count 10000] [--profile]

The same synthetic messages (bench/traffic.py, fixed seed) are (1) parsed bare with
`email.message_from_bytes(raw, policy=policy.default)` plus body extraction, and (2) imported
into a fresh mailbot database and processed: store raw, parse, classify, thread, write ticket,
message, events, ack and agent notifications to the outbox. Prints figures; asserts nothing.
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

from bench.traffic import messages
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


def mailbot_ingest(raws: list[bytes], directory: Path, profile: bool) -> tuple[float, float, int]:
    """(intake seconds, pipeline seconds, tickets) for a fresh database in `directory`."""
    cfg = config_module.load(write_config(directory))
    ctx = open_context(cfg)
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    started = time.perf_counter()
    with ctx.store.atomic():  # an import acknowledges nobody: one commit for the batch
        for raw in raws:
            accept(ctx.store, raw, source="import", now=now)
    intake = time.perf_counter() - started
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    process_pending(ctx, now)
    if profiler:
        profiler.disable()
    pipeline = time.perf_counter() - started
    tickets = ctx.store.count("tickets")
    ctx.close()
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return intake, pipeline, tickets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline")
    args = parser.parse_args()
    raws = list(messages(args.count))
    size = sum(map(len, raws)) / len(raws)
    print(f"{len(raws)} synthetic messages, {size / 1024:.1f} KiB on average")
    bare = bare_parse(raws)
    with tempfile.TemporaryDirectory() as directory:
        intake, pipeline, tickets = mailbot_ingest(raws, Path(directory), args.profile)
    total = intake + pipeline
    n = len(raws)
    print(f"bare parse (policy.default + body):  {n / bare:8.0f} msg/s")
    print(f"mailbot intake (store raw):          {n / intake:8.0f} msg/s")
    print(f"mailbot pipeline (parse→outbox):     {n / pipeline:8.0f} msg/s")
    print(f"mailbot ingest, intake + pipeline:   {n / total:8.0f} msg/s  ({tickets} tickets)")
    print(f"ratio ingest / bare parse:           {bare / total:8.2f}")


if __name__ == "__main__":
    main()
