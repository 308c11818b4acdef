"""Accuracy of reply stripping on the corpus's quote fixtures: `python -m bench.quotes [--verbose]`.

The cases, the two comparisons (strict and fair) and the scoring are tests/quote_corpus.py's,
which tests/test_quotes.py holds to these figures. `--func module:callable` measures another
stripper on the same cases.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from tests.quote_corpus import SETS, Strip, evaluate

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def _load_strip(spec: str) -> Strip:
    module, _, attr = spec.partition(":")
    strip: Strip = getattr(importlib.import_module(module), attr)
    return strip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="list failing cases")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument(
        "--func", default="mailbot.mail.quotes:strip_reply", help="module:callable to measure"
    )
    args = parser.parse_args(argv)
    strip = _load_strip(args.func)
    print(f"{'set':<32} {'cases':>5} {'strict':>7} {'acc %':>6} {'fair':>5} {'acc %':>6}")
    for name, load in SETS.items():
        strict, fair = evaluate(load(args.corpus), strip)
        print(
            f"{name:<32} {fair.cases:>5} {strict.correct:>7} {strict.accuracy:>6.1f}"
            f" {fair.correct:>5} {fair.accuracy:>6.1f}"
        )
        if args.verbose:
            for label, score in (("strict", strict), ("fair", fair)):
                if score.failures:
                    print(f"    {label} failures: {', '.join(score.failures)}")


if __name__ == "__main__":
    main()
