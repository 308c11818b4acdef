"""Bounce and automatic-mail recognition on the corpus: `python -m bench.bounces [--verbose]`.

Prints figures and asserts nothing. The labelling rules and the tallies are
tests/bounce_corpus.py's, which tests/test_automatic.py holds to these figures.

Columns per group: `right` = the expected kind; `caught` = any automatic kind (for a bounce
this is what matters: nothing gets acknowledged); `human` = returned None; `parsed` = a
`Bounce` object came back (needed to attach the bounce to its ticket); `rcpt` = it names at
least one failed address.

`--flufl` adds the comparison with flufl.bounce alone (GNU Mailman's detectors, which
mailbot consults last, see `mailbot.mail.bounce.second_opinion`): per labelled set, how
many messages each calls a bounce.
"""

from __future__ import annotations

import argparse
import email
import email.policy
from collections.abc import Iterable
from pathlib import Path

from flufl.bounce import all_failures

from tests.bounce_corpus import (
    HUMAN_SETS,
    NOT_HUMAN,
    OTHER_BOUNCES,
    FluflScore,
    HumanScore,
    IdScore,
    Run,
    classify,
    corpus_messages,
    flufl,
    flufl_expected,
    human_mail,
    message_id_rate,
    other_bounces,
    other_mail,
    pct,
    sisimai_expected,
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


def _flufl_alone(raw: bytes) -> bool:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # some detectors raise on malformed mail
        return False
    return bool(temporary or permanent)


def _compare(corpus: Path) -> None:
    """Messages called a bounce by mailbot and by flufl.bounce alone, per labelled set."""
    sisimai = corpus / "sisimai-set-of-emails"
    expected = sisimai_expected(corpus)
    bounce_reasons = {
        rel
        for rel, entry in expected.items()
        if not {r["reason"] for r in entry["recipients"]} & {"vacation", "feedback", "delivered"}
    }
    sets: list[tuple[str, bool, Iterable[Path]]] = [
        ("sisimai maildir-bsd bounces", True, (sisimai / r for r in sorted(bounce_reasons))),
        (
            "sisimai maildir-dos-crlf bounces",
            True,
            (
                p
                for p in sorted((sisimai / "maildir-dos-crlf").glob("*.eml"))
                if not p.name.startswith(("arf-", "rfc3834-"))
            ),
        ),
        ("flufl-bounce data", True, (corpus / "flufl-bounce" / r for r in flufl_expected(corpus))),
        (
            "other bounce fixtures",
            True,
            (
                path
                for entry in OTHER_BOUNCES
                for path in sorted((corpus / entry).rglob("*")) or [corpus / entry]
                if path.is_file()
            ),
        ),
        (
            "sisimai auto-replies, ARF, success DSNs",
            False,
            (sisimai / r for r in sorted(set(expected) - bounce_reasons)),
        ),
        ("sisimai maildir-not-bounce", False, sorted((sisimai / "maildir-not-bounce").glob("*"))),
        (
            "person-to-person fixtures",
            False,
            (
                corpus / r
                for r in corpus_messages(corpus)
                if r.startswith(HUMAN_SETS) and r not in NOT_HUMAN
            ),
        ),
    ]
    print("called a bounce: mailbot vs flufl.bounce alone (want all for bounces, none else)")
    for title, bounces, paths in sets:
        n = ours = theirs = 0
        for path in paths:
            raw = path.read_bytes()
            found = classify(raw)
            n += 1
            ours += bool(found and found.kind == "bounce")
            theirs += _flufl_alone(raw)
        kind = "bounces" if bounces else "not bounces"
        print(f"  {title:<42}{n:>5} {kind:<12} mailbot {ours:>5}   flufl.bounce {theirs:>5}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="list misses and flags")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--flufl", action="store_true", help="compare with flufl.bounce alone")
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
    if args.flufl:
        _compare(corpus)


if __name__ == "__main__":
    main()
