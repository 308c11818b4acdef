"""Fuzz the pipeline: mutated corpus mail through intake and the worker, crashes and slow mail kept.

    .venv/bin/python -m bench.fuzz [--seconds 300] [--seed 1] [--save DIR] [--exclude MUTATOR]
    .venv/bin/python -m bench.fuzz --pathological      # time the named pathological inputs
    .venv/bin/python -m bench.fuzz --replay N --seed S --save DIR   # rebuild input N of a run

The long run of the fuzzing tests/test_fuzz.py does under Hypothesis, with the same seeds,
mutators and runner (tests/fuzzing.py). Every corpus message (../shared/corpus, kind "message"
in INVENTORY.json) and the hand-built seeds are mutated by 1-3 of the mutators in `MUTATORS`
and fed to `accept` + `process_pending` of a mailbot on the shipped config, in a child process
so that a hang is cut off (and the child replaced) instead of stalling the run. Each input is
processed inside a transaction that is rolled back afterwards, so every input meets the same
database (ticket #1 only: no "duplicate" because an earlier mutant had the same Message-ID)
and the file never grows.

An input fails when an exception escapes `process_pending`, when its inbound row is left in a
non-final status or is ignored/quarantined without a reason, or when the row records an
unexpected-exception traceback (`inbound.error`), or when it takes longer than --timeout.
Failures are grouped by exception type and innermost frame, shrunk to a small reproducer and,
with --save, written to DIR. Input N is rebuilt from (--seed, N, --exclude) alone, so the
label printed for it is enough to reproduce it (--replay).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzzing import MUTATORS, PATHOLOGICAL, Outcome, Worker, load_seeds, mutate

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


# -- the long run -------------------------------------------------------------------------------


def recipe(
    seeds: list[tuple[str, bytes]], mutators: list[str], seed: int, number: int, size: int
) -> tuple[str, bytes]:
    """Input `number` of a run: its label and bytes, rebuilt from (seed, number) alone."""
    rng = random.Random(f"{seed}:{number}")
    name, raw = rng.choice(seeds)
    names = [rng.choice(mutators) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
    return f"#{number} {name} → {'+'.join(names)}", mutate(raw, rng, names, size)


@dataclass
class Crash:
    """One distinct failure: how often, the first inputs, and a shrunk reproducer."""

    signature: str
    problems: list[str]
    error: str
    count: int = 0
    examples: list[tuple[str, bytes]] = field(default_factory=list)
    minimal: bytes | None = None


@dataclass
class Tally:
    """Everything a run found: outcome counts, distinct failures, the slowest finished inputs."""

    save: Path | None
    keep_slowest: int
    inputs: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    by_mutator: Counter[str] = field(default_factory=Counter)
    crashes: dict[str, Crash] = field(default_factory=dict)
    slowest: list[tuple[float, str, int]] = field(default_factory=list)  # min-heap

    def record(self, label: str, raw: bytes, outcome: Outcome | None, timeout: float) -> None:
        self.inputs += 1
        if outcome is None:
            self.statuses["hang"] += 1
            problems, signature, error = [f"no answer within {timeout:.0f} s"], "hang", ""
        else:
            self.statuses[outcome.status] += 1
            # Hangs are listed with the failures; this list is for inputs that finished.
            heapq.heappush(self.slowest, (outcome.seconds, label, len(raw)))
            if len(self.slowest) > self.keep_slowest:
                heapq.heappop(self.slowest)
            problems, signature = outcome.problems(), outcome.signature()
            error = outcome.escaped or outcome.error or ""
        if not problems:
            return
        crash = self.crashes.setdefault(signature, Crash(signature, problems, error))
        crash.count += 1
        self.by_mutator.update(label.split(" → ")[1].split("+"))
        if len(crash.examples) < (10 if signature == "hang" else 3):
            crash.examples.append((label, raw))
            if self.save:
                _save(self.save, "crashes", f"{signature[:40]}-{label}", raw)

    def progress(self, elapsed: float) -> str:
        return (
            f"  {elapsed:5.0f} s: {self.inputs} inputs, {dict(self.statuses)},"
            f" {len(self.crashes)} distinct failures"
        )

    def report(self, elapsed: float) -> None:
        print(f"\n{self.inputs} inputs in {elapsed:.0f} s ({self.inputs / elapsed:.0f}/s)")
        print("outcomes: " + ", ".join(f"{k} {v}" for k, v in self.statuses.most_common()))
        print(f"\n{len(self.crashes)} distinct failures" + (":" if self.crashes else ""))
        for crash in sorted(self.crashes.values(), key=lambda c: -c.count):
            print(f"\n== {crash.signature}  ×{crash.count}\n   {'; '.join(crash.problems)}")
            for label, raw in crash.examples:
                print(f"   e.g. {label} ({len(raw)} bytes)")
            if crash.minimal is not None:
                shown = crash.minimal[:600] + (b"..." if len(crash.minimal) > 600 else b"")
                print(f"   minimal ({len(crash.minimal)} bytes): {shown!r}")
            print("   " + "\n   ".join(crash.error.strip().splitlines()[-6:]))
        if self.by_mutator:
            counts = ", ".join(f"{k} {v}" for k, v in self.by_mutator.most_common())
            print(f"\nfailing inputs by mutator: {counts}")
        print("\nslowest inputs that finished:")
        for seconds, label, size in sorted(self.slowest, reverse=True):
            print(f"  {seconds:7.3f} s  {size:>9} bytes  {label}")


def minimize(worker: Worker, raw: bytes, signature: str, budget: float, timeout: float) -> bytes:
    """Drop lines, then ever smaller byte ranges, while the input fails the same way."""
    deadline = time.monotonic() + budget

    def fails(candidate: bytes) -> bool:
        outcome = worker.run(candidate, timeout)
        return outcome is not None and outcome.problems() != [] and outcome.signature() == signature

    lines = raw.splitlines(keepends=True)
    chunk = max(1, len(lines) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(lines) and time.monotonic() < deadline:
            candidate = lines[:start] + lines[start + chunk :]
            if candidate and fails(b"".join(candidate)):
                lines, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    raw = b"".join(lines)
    # Byte ranges (not single bytes first): a 100 KB header line shrinks in a few dozen runs.
    chunk = max(1, len(raw) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        start, shrunk = 0, False
        while start < len(raw) and time.monotonic() < deadline:
            candidate = raw[:start] + raw[start + chunk :]
            if candidate and fails(candidate):
                raw, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return raw


def _save(directory: Path, kind: str, label: str, raw: bytes) -> Path:
    digest = hashlib.sha256(raw).hexdigest()[:12]
    slug = re.sub(r"[^\w.-]+", "_", label)[:60].strip("_")
    path = directory / kind / f"{slug}-{digest}.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def fuzz(args: argparse.Namespace) -> None:
    seeds = load_seeds(None if args.no_corpus else args.corpus)
    mutators = [name for name in MUTATORS if name not in args.exclude]
    print(
        f"{len(seeds)} seed messages, {len(mutators)} mutators, seed {args.seed},"
        f" {args.seconds:.0f} s, timeout {args.timeout:.0f} s per input",
        flush=True,
    )
    tally = Tally(save=args.save, keep_slowest=args.slowest)
    worker = Worker()
    started = last_report = time.monotonic()
    try:
        while time.monotonic() - started < args.seconds:
            label, raw = recipe(seeds, mutators, args.seed, tally.inputs + 1, args.size)
            tally.record(label, raw, worker.run(raw, args.timeout), args.timeout)
            if time.monotonic() - last_report > 30:
                last_report = time.monotonic()
                print(tally.progress(last_report - started), flush=True)
        elapsed = time.monotonic() - started
        for crash in tally.crashes.values():
            if crash.signature != "hang" and args.minimize > 0:
                crash.minimal = minimize(
                    worker, crash.examples[0][1], crash.signature, args.minimize, args.timeout
                )
                if args.save:
                    _save(args.save, "minimal", crash.signature[:60], crash.minimal)
        if args.save:
            for seconds, label, _ in tally.slowest:
                number = int(label.split()[0][1:])
                raw = recipe(seeds, mutators, args.seed, number, args.size)[1]
                _save(args.save, "slow", f"{seconds:.2f}s-{label}", raw)
    finally:
        worker.close()
    tally.report(elapsed)


def pathological(timeout: float) -> None:
    """Time each PATHOLOGICAL input in the child process (a hang is cut off, not waited out)."""
    worker = Worker()
    try:
        for name, make in PATHOLOGICAL.items():
            raw = make()
            outcome = worker.run(raw, timeout)
            if outcome is None:
                print(f"{name:58} {len(raw):>10} B  > {timeout:.0f} s (killed)", flush=True)
                continue
            what = "" if outcome.status == "processed" else (outcome.reason or "")
            print(
                f"{name:58} {len(raw):>10} B  {outcome.seconds:7.3f} s  {outcome.status}"
                f"  {what[:70]}" + ("  [traceback]" if outcome.error else ""),
                flush=True,
            )
    finally:
        worker.close()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=1, help="run seed; inputs derive from it")
    parser.add_argument("--save", type=Path, help="write failing and slowest inputs here")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-corpus", action="store_true", help="builtin seeds only")
    parser.add_argument(
        "--exclude", action="append", default=[], choices=list(MUTATORS), metavar="MUTATOR",
        help="leave a mutator out (e.g. one whose known bug would use up the run)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=30, help="seconds before a hang")
    parser.add_argument("--size", type=int, default=300_000, help="largest count a mutator uses")
    parser.add_argument("--slowest", type=int, default=10, help="how many slow inputs to list")
    parser.add_argument("--minimize", type=float, default=30, help="seconds to shrink each bug")
    parser.add_argument("--replay", type=int, metavar="N", help="rebuild input N and stop")
    parser.add_argument("--pathological", action="store_true", help="time PATHOLOGICAL inputs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    if args.pathological:
        pathological(args.timeout)
    elif args.replay is not None:
        seeds = load_seeds(None if args.no_corpus else args.corpus)
        mutators = [name for name in MUTATORS if name not in args.exclude]
        label, raw = recipe(seeds, mutators, args.seed, args.replay, args.size)
        print(label)
        if args.save:
            print(_save(args.save, "replay", label, raw))
        else:
            sys.stdout.buffer.write(raw)
    else:
        fuzz(args)


if __name__ == "__main__":
    main()
