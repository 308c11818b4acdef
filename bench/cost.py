"""Pipeline cost per step: CPU seconds of parse, classify, thread, decide and write, per message.

    .venv/bin/python -m bench.cost [--count 1500] [--rounds 3]

The same synthetic traffic as bench.ingest (bench/traffic.py, fixed seed) is stored and run
through the pipeline on a fresh database; each step's thread CPU time is summed, and the best of
`--rounds` runs is printed, in seconds and in microseconds a message. Prints figures; asserts
nothing.

CPU time still moves with the machine's load. For a figure that does not, count instructions:
run it under cachegrind for two counts and take the difference, so start-up cost cancels:

    PYTHONHASHSEED=0 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
        .venv/bin/python -m bench.cost --count 100 --rounds 1     # then --count 400
    instructions a message = (I refs at 400 - I refs at 100) / 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.steps import wrapped_steps
from bench.traffic import NO_FLOOD_LIMITS, messages
from mailbot import config as config_module
from mailbot.context import open_context
from mailbot.intake import accept
from mailbot.worker import process_pending
from tests.helpers import write_config

STEPS = ("parse", "classify", "thread", "decide", "write")


def one_run(raws: list[bytes], directory: Path) -> dict[str, float]:
    """CPU seconds per step (and in all) of processing `raws` on a fresh database."""
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, run: Callable[..., Any]) -> Callable[..., Any]:
        def step(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return run(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - started

        return step

    ctx = open_context(config_module.load(write_config(directory, settings=NO_FLOOD_LIMITS)))
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with ctx.store.atomic():
        for raw in raws:
            accept(ctx.store, raw, source="import", now=now)
    with wrapped_steps(timed):
        started = time.thread_time()
        process_pending(ctx, now)
        spent["pipeline"] = time.thread_time() - started
    ctx.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3, help="best of N fresh runs")
    args = parser.parse_args()
    raws = list(messages(args.count))
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as directory:
            for name, seconds in one_run(raws, Path(directory)).items():
                best[name] = min(best.get(name, seconds), seconds)
    print(f"{len(raws)} messages, best of {args.rounds}: CPU per step")
    for name in (*STEPS, "pipeline"):
        seconds = best.get(name, 0.0)
        print(f"  {name:<9} {seconds:7.3f} s  {seconds / len(raws) * 1e6:8.0f} µs a message")


if __name__ == "__main__":
    main()
