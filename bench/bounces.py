"""Bounce and automatic-mail recognition on the corpus: `python -m bench.bounces [--verbose]`.

Prints figures and asserts nothing. The labelling rules and the tallies are
tests/bounce_corpus.py's, which tests/test_automatic.py holds to these figures.

Columns per group: `right` = the expected kind; `caught` = any automatic kind (for a bounce
this is what matters: nothing gets acknowledged); `human` = returned None; `parsed` = a
`Bounce` object came back (needed to attach the bounce to its ticket); `rcpt` = it names at
least one failed address.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.bounce_corpus import (
    FluflScore,
    HumanScore,
    IdScore,
    Run,
    flufl,
    human_mail,
    message_id_rate,
    other_bounces,
    other_mail,
    pct,
    sisimai_runs,
)

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


def _print_flufl(score: FluflScore, run: Run, verbose: bool) -> None:
    total = run.groups["bounce"].total
    print(
        f"  parsed {score.parsed}/{total} {pct(score.parsed, total)}   failed addresses found "
        f"{score.address_ok}/{score.parsed} {pct(score.address_ok, score.parsed)}   "
        f"permanent/temporary right {score.permanence_ok}/{score.permanence_cases} "
        f"{pct(score.permanence_ok, score.permanence_cases)}"
    )
    if verbose:
        for problem in score.problems:
            print(f"      {problem}")


def _print_ids(score: IdScore, verbose: bool) -> None:
    print("original Message-ID, parsed bounces that show the original's headers")
    print(
        f"  extracted {score.extracted}/{score.with_headers} "
        f"{pct(score.extracted, score.with_headers)}   (+{score.extra} where the check saw "
        "no ID, e.g. an encoded original)"
    )
    if verbose:
        for miss in score.misses:
            print(f"      missed: {miss}")


def _print_human(score: HumanScore, corpus: Path, verbose: bool) -> None:
    print("human mail (person-to-person fixtures)")
    flagged = len(score.false_positives)
    print(
        f"  flagged automatic {flagged}/{score.checked} {pct(flagged, score.checked)}   "
        f"(+{len(score.machine)} fixtures that are machine mail by their headers)"
    )
    if verbose:
        for line in score.false_positives:
            print(f"      FALSE POSITIVE {line}")
        for line in score.machine:
            print(f"      machine mail: {line}")
    kinds, flagged_other = other_mail(corpus)
    print("other non-bounce fixtures (spam, lists, malformed MIME), for information")
    print("  " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    if verbose:
        for line in flagged_other:
            print(f"      {line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="list misses and flags")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    corpus: Path = args.corpus

    print(f"{'':<28}{'n':>5} {'right':>6} {'caught':>6} {'human':>5} {'parsed':>6} {'rcpt':>6}")
    runs = [*sisimai_runs(corpus), other_bounces(corpus)]
    for run in runs:
        run.report(args.verbose)
    flufl_run, flufl_score = flufl(corpus)
    flufl_run.report(args.verbose)
    _print_flufl(flufl_score, flufl_run, args.verbose)
    _print_ids(message_id_rate(s for run in [*runs, flufl_run] for s in run.bounces), args.verbose)
    _print_human(human_mail(corpus), corpus, args.verbose)


if __name__ == "__main__":
    main()
