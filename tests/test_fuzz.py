"""Fuzzing: mutated mail through intake and the worker ends processed or quarantined, in time."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from tests.fuzzing import (
    BENCH_ONLY,
    BUILTIN,
    FINAL,
    MUTATORS,
    PATHOLOGICAL,
    Outcome,
    Worker,
    fuzz_context,
    load_seeds,
    mutate,
    run_one,
    traceback_signature,
)

# Deterministic for CI: the same inputs every run, nothing remembered between runs. The
# longer, randomised search is `python -m bench.fuzz`.
FUZZ = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The largest count a mutator may pick here (parts, nesting levels, repetitions): keeps each
# example in milliseconds. Pathological sizes are covered by the timed tests below.
SIZE = 2_000
BOUND = 10.0  # seconds one message may take, generously: the failure this catches is a hang

# Unexpected exceptions that are known and accepted, by a pattern of the traceback stored on
# the row: none. Any traceback fails the property tests (shrink it with bench.fuzz --save DIR
# and add a reproducer below).
KNOWN_CRASHES: dict[str, re.Pattern[str]] = {}


def check(outcome: Outcome, raw: bytes) -> None:
    """The fuzzing properties, with the input noted for Hypothesis' report."""
    note(f"input ({len(raw)} bytes): {raw[:400]!r}")
    assert outcome.escaped is None, f"exception escaped process_pending:\n{outcome.escaped}"
    assert outcome.status in FINAL and outcome.pending == 0, outcome
    if outcome.status in {"quarantined", "ignored"}:
        assert outcome.reason, f"{outcome.status} without a reason"
    if outcome.error:
        known = [name for name, pattern in KNOWN_CRASHES.items() if pattern.search(outcome.error)]
        # A new bug: shrink it with bench.fuzz (--save DIR) and add a reproducer below.
        assert known, f"unexpected exception: {traceback_signature(outcome.error)}\n{outcome.error}"
        event(f"known crash: {known[0]}")
    else:
        event(outcome.status)


@pytest.fixture(scope="module")
def fuzz_ctx(tmp_path_factory: pytest.TempPathFactory):
    """One mailbot with ticket #1; every input runs in a transaction that is rolled back."""
    ctx = fuzz_context(tmp_path_factory.mktemp("fuzz"))
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def corpus_seeds(corpus: Path) -> list[tuple[str, bytes]]:
    return [(name, raw) for name, raw in load_seeds(corpus) if not name.startswith("builtin:")]


@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_seeds_are_processed_cleanly(fuzz_ctx, name: str) -> None:
    # Mutants of a seed that already failed would say nothing about the mutation.
    outcome = run_one(fuzz_ctx, BUILTIN[name])
    assert (outcome.status, outcome.error, outcome.escaped) == ("processed", None, None)


@pytest.mark.parametrize("mutator", list(MUTATORS))
@settings(max_examples=25, **FUZZ)
@given(seed=st.sampled_from(list(BUILTIN)), rng=st.randoms(use_true_random=False))
def test_mutated_builtin_mail_is_handled(fuzz_ctx, mutator: str, seed: str, rng) -> None:
    """Runs without the corpus: each mutator on the hand-built seeds."""
    raw = mutate(BUILTIN[seed], rng, [mutator], SIZE)
    check(run_one(fuzz_ctx, raw), raw)


@settings(max_examples=300, **FUZZ)
@given(data=st.data())
def test_stacked_mutations_of_corpus_mail_are_handled(fuzz_ctx, corpus_seeds, data) -> None:
    _, raw = data.draw(st.sampled_from(corpus_seeds), label="seed")
    mutators = data.draw(st.lists(st.sampled_from(list(MUTATORS)), min_size=1, max_size=3))
    raw = mutate(raw, data.draw(st.randoms(use_true_random=False)), mutators, SIZE)
    check(run_one(fuzz_ctx, raw), raw)


# -- crashes the fuzzer found: minimal reproducers, kept as regression tests ----------------


def assert_clean(ctx, raw: bytes) -> None:
    outcome = run_one(ctx, raw)
    assert outcome.error is None and outcome.escaped is None, traceback_signature(
        outcome.error or outcome.escaped or ""
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: text/plain; charset=rot13\n\n\xff",
        b"From: a@b.pl\nSubject: =?base64?q?=FF?=\n\nx",
        b"Content-Type: text/plain; charset=idna\n\n\xff",
        b"Content-Type: text/plain; charset=punycode\n\n-\x82",
        b"Subject:=?undefined?q?=E6?=",
    ],
    ids=["rot13-body", "base64-encoded-word", "idna", "punycode", "undefined"],
)
def test_codec_label_that_is_not_a_text_codec(fuzz_ctx, raw: bytes) -> None:
    """A charset label naming a non-text codec used to fail in decode_bytes' fallback.

    Minimal reproducers (bench.fuzz, shrunk):
        b"Content-Type: text/plain; charset=rot13\\n\\n\\xff"   LookupError: not a text encoding
        b"Subject: =?base64?q?=FF?=\\n\\nx"                      same, from a header
        b"Content-Type: text/plain; charset=idna\\n\\n\\xff"    UnicodeError (no 'replace')
        b"Content-Type:;charset=punycode\\n\\n-\\x82"             UnicodeDecodeError inside codec
        b"References:=?rot13?q?=FF?="                           any header will do
        b"Subject:=?undefined?q?=E6?="                          UnicodeError in the first decode

    codecs.lookup() accepts bytes-to-bytes codecs (rot13, base64, hex, zlib, uu, quopri, bz2)
    and codecs that raise UnicodeError whatever `errors` says (idna, punycode, undefined); the
    first decode catches only UnicodeDecodeError/LookupError, the errors="replace" fallback
    list comprehension catches nothing.
    """
    assert_clean(fuzz_ctx, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@b.pl\r" + b"Content-Type: message/rfc822\r\r" * 1_000,
        b"From: a@b.pl\r"
        + b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\r--b%d\r' % (i, i)
            for i in range(1_000)
        )
        + b"\r\n\r\n",
        b"From: a@b.pl\n"
        + b"".join(
            b'Content-Type: multipart/mixed; boundary*0="b%d"\n\n--b%d\n' % (i, i)
            for i in range(1_000)
        ),
    ],
    ids=["message-rfc822-CR-line-ends", "multipart-CR-line-ends", "rfc2231-boundary"],
)
def test_nesting_the_pre_parse_scan_could_not_see(fuzz_ctx, raw: bytes) -> None:
    """Deep nesting written so the pre-parse scan missed it used to end in RecursionError.

    Minimal reproducers:
        b"From: a@b.pl\\r" + b"Content-Type: message/rfc822\\r\\r" * 1000
        b"From: a@b.pl\\r" + b'Content-Type: multipart/mixed; boundary="b0"\\r\\r--b0\\r' ...
            (1,000 levels, then one CRLF blank line so the header-size check passes)
        b"From: a@b.pl\\n" + b'Content-Type: multipart/mixed; boundary*0="b0"\\n\\n--b0\\n' ...
            (1,000 levels, boundary names b0..b999, RFC 2231 form)

    The stdlib feedparser ends lines at bare CR and reads RFC 2231 `boundary*0=`; the scan's
    `^`-anchored regexes (re.M: LF only) and `boundary\\s*=` do not, so the depth cap is never
    applied and the parser recurses once per level until RecursionError (caught by the
    worker, recorded as a traceback, retried, quarantined).
    """
    assert_clean(fuzz_ctx, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Type: text/plain " + b"(" * 1_000 + b"\n\nx",
        b"Content-Type:t/p;h" + b"(" * 400,
        b"Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: " + b"(" * 1_000,
    ],
    ids=["content-type", "content-type-parameter", "multipart-transfer-encoding"],
)
def test_nested_comments_in_a_mime_header(fuzz_ctx, raw: bytes) -> None:
    """Nested comments in a MIME header used to end in RecursionError in the header registry.

    Minimal reproducers:
        b"Content-Type: text/plain " + b"(" * 1000 + b"\\n\\nx"
        b"Content-Type:t/p;h" + b"(" * 240              (258 bytes, shrunk by bench.fuzz)
        b"Content-Type: multipart/mixed; boundary=b\\nContent-Transfer-Encoding: " + b"(" * 1000

    The feedparser itself reads Content-Type (and, for a multipart, Content-Transfer-Encoding)
    through policy.default's header registry, whose comment parser recurses a few frames per
    "(": the RecursionError comes out of parse(), where nothing expects it.
    """
    assert_clean(fuzz_ctx, raw)


# -- bounded time for pathological mail ------------------------------------------------------


@pytest.fixture(scope="module")
def worker():
    """A child process, so that a hang can be cut off (and the child replaced)."""
    instance = Worker()
    yield instance
    instance.close()


@pytest.mark.parametrize(
    "name",
    [pytest.param(name) for name in PATHOLOGICAL if name not in BENCH_ONLY],
)
def test_pathological_mail_ends_within_the_bound(worker: Worker, name: str) -> None:
    raw = PATHOLOGICAL[name]()
    # The child times process_pending alone; the wait also covers sending the bytes.
    outcome = worker.run(raw, timeout=BOUND + 1)
    assert outcome is not None, f"{name}: no outcome within {BOUND + 1:.0f} s (killed)"
    assert outcome.status in FINAL, outcome
    assert outcome.seconds < BOUND, f"{name}: {outcome.seconds:.1f} s"
