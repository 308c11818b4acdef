"""Topic routing on inflected subjects: `python -m bench.topics`.

Runs tests/topic_corpus.py's cases (Polish inflected subjects, English, negatives) through
the keyword prefix match that routed tickets before lemmas (`prefix`) and through
mailbot.pipeline.topics (`forms`: keywords' inflected forms from the dictionaries), with the
shipped config's topics. Prints accuracy, the misses, the one-time computation of the forms
(in a fresh cache directory; its subprocess's peak memory), reading them back from the
cache, microseconds per message, and this process's resident memory before and after.
"""

from __future__ import annotations

import os
import re
import resource
import tempfile
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from mailbot import config as config_module
from mailbot.config import Topic
from mailbot.pipeline import topics as topic_module
from tests.helpers import write_config
from tests.topic_corpus import CASES

Router = Callable[[tuple[Topic, ...], str, str], tuple[str | None, str]]


@lru_cache(maxsize=8)
def _patterns(topics: tuple[Topic, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple(
        (t.name, re.compile("|".join(rf"(?<!\w){re.escape(k.lower())}" for k in t.keywords)))
        for t in topics
        if t.keywords
    )


def prefix_topic_of(topics: tuple[Topic, ...], subject: str, text: str) -> tuple[str | None, str]:
    """The match used before: any keyword at the start of a word, any case."""
    haystack = f"{subject}\n{text[:4000]}".lower()
    for name, pattern in _patterns(topics):
        found = pattern.search(haystack)
        if found:
            return name, f"keyword {found.group(0)!r}"
    return None, "no topic keyword matched"


def score(name: str, route: Router, topics: tuple[Topic, ...], repeat: int) -> None:
    misses = []
    for subject, body, expected in CASES:
        got, _ = route(topics, subject, body)
        if got != expected:
            misses.append(f"{subject!r}: {got} (want {expected})")
    started = time.perf_counter()
    for _ in range(repeat):
        for subject, body, _expected in CASES:
            route(topics, subject, body)
    per_message = (time.perf_counter() - started) / (repeat * len(CASES)) * 1e6
    correct = len(CASES) - len(misses)
    print(
        f"{name:<8} {correct:>3}/{len(CASES)}  {100 * correct / len(CASES):5.1f} %"
        f"  {per_message:7.1f} µs/message"
    )
    for miss in misses:
        print(f"    miss {miss}")


def resident_mb() -> float:
    """This process's resident memory (VmRSS), MB."""
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kb / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        topics = config_module.load(write_config(Path(directory))).topics
        print(f"{len(CASES)} cases, {sum(e is None for _, _, e in CASES)} of them without a topic")
        score("prefix", prefix_topic_of, topics, repeat=50)
        before = resident_mb()
        os.environ["CACHE_DIRECTORY"] = directory  # a first computation, not the user's cache
        took = topic_module.warm(topics)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"keyword forms computed in {took:.2f} s (subprocess peak {peak:.0f} MB)")
        topic_module.keyword_forms.cache_clear()
        topic_module._keywords.cache_clear()
        print(f"read back from the cache in {1000 * topic_module.warm(topics):.1f} ms")
        score("forms", topic_module.topic_of, topics, repeat=50)
        print(f"resident: {before:.0f} MB before routing, {resident_mb():.0f} MB after")


if __name__ == "__main__":
    main()
