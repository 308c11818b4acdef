"""The corpus's quote fixtures as cases for reply stripping, and how to score them.

Used by tests/test_quotes.py (accuracy that must not regress) and `python -m bench.quotes`
(the figures).

Each upstream set encodes its own library's semantics, so every set gets a stated comparison.
Each case is scored twice:

* **strict**: the upstream expectation as transcribed, compared after whitespace
  normalisation (trailing spaces, runs of blank lines, leading/trailing blank lines and
  trailing lines made only of separator characters such as "-----" are ignored).
* **fair**: the same, except where an upstream expectation contradicts a deliberate policy
  of `mailbot.mail.quotes` (documented there):
  - all `>` lines are dropped, even when no reply header introduces them: the trimmer keeps
    such lines, so `>` lines are removed from its expected text too;
  - sign-offs such as "Pozdrawiam,\\nJan" or "-Abhishek Kona" are kept: alfonsrv, zapier and
    crisp sometimes call them signatures, so those signature checks are skipped and an exact
    expectation may be followed by a sign-off of at most four short lines;
  - "-- " and mobile signatures are dropped: talon keeps them ("Sent from my iPhone",
    "-- \\nxxx\\nSent with Sparrow"), so its expectations are cut at the signature.

Per set:
* discourse-email_reply_trimmer: emails/X.txt against trimmed/X.txt.
* talon: standard_replies (first text/plain part) against "Hello" or *_reply_text;
  html_replies and the two HTML files through `html_to_text`, compared with all whitespace
  removed as talon does; reply-quotations-share-block.eml whole (non-empty, no "From");
  inline_cases.json, skipping the cases whose upstream test patches talon's internals. Two
  `test_reply_and_quotation_splitter_share_line` entries carry the wrong body (the
  extraction kept the last value of a reassigned variable); their upstream bodies are used.
  The signature/ fixtures are not used: they test a sender-aware classifier of undelimited
  signatures, which this module does not attempt.
* crisp-email-reply-parser: exact texts where expected.json has one; the other tests are
  translated by hand below (CRISP_CHECKS) from their assertions: text of fragment 0 must be
  in the output, text of quoted or hidden fragments must not.
* alfonsrv-mail-parser-reply: the structured checks; replies[0].body is our output, text
  of replies[1..] (and replies[0].headers) must not appear in it; reply counts and
  `content` checks are not applicable. Tests left with no applicable check are skipped.
* zapier-email-reply-parser: exact replies where given, the others translated by hand
  (ZAPIER_CHECKS) like crisp's, including the 1-second limit on pathological.txt.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from mailbot.mail.html import html_to_text
from mailbot.mail.quotes import strip_reply

Strip = Callable[[str], str]
# A check: (operation, value, mode); mode "strict" marks upstream expectations that the fair
# comparison does not apply (see the module docstring).
Check = tuple[str, object, str]

_SEPARATOR_LINE = re.compile(r"^[-_=*~#+\s]+$")
_SIGN_OFF = re.compile(
    r"^\s*(?:pozdrawiam|z\s+powa[zż]aniem|med\s+venlig\s+hilsen|hilsen|kh|mvh|regards|"
    r"best\s+regards|kind\s+regards|thanks|thank\s+you|cheers|[-/]\s*\w+)",
    re.IGNORECASE,
)


@dataclass
class Case:
    """One fixture: the input body and the checks its output must pass."""

    name: str
    text: str
    checks: list[Check]


@dataclass
class Score:
    """Results of one set under one comparison."""

    cases: int = 0
    correct: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.cases if self.cases else 0.0


def normalise(text: str) -> str:
    """Text with whitespace noise and trailing separator lines removed, for comparison."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and (not out[-1] or _SEPARATOR_LINE.match(out[-1])):
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return "\n".join(out)


def _no_space(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _drop_quoted(text: str) -> str:
    """`text` without its `>` lines and the blank lines after them, as our policy drops them."""
    out: list[str] = []
    after_quote = False
    for line in text.split("\n"):
        if line.lstrip().startswith(">"):
            after_quote = True
        elif not (after_quote and not line.strip()):
            after_quote = False
            out.append(line)
    return "\n".join(out)


def _cut_signature(text: str) -> str:
    """Talon's expected text without the "-- " or mobile signature it keeps."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "--" or re.match(r"\s*sent (from|with) ", line, re.IGNORECASE):
            return "\n".join(lines[:i])
    return text


def _equals(out: str, want: str, fair: bool) -> bool:
    got, want = normalise(out), normalise(want)
    if got == want:
        return True
    if not fair or not got.startswith(want):
        return False
    rest = [line for line in got[len(want) :].split("\n") if line.strip()]
    return 0 < len(rest) <= 4 and bool(_SIGN_OFF.match(rest[0])) and all(len(x) < 60 for x in rest)


def passes(case: Case, out: str, seconds: float, fair: bool) -> bool:
    """Whether `out` (produced in `seconds`) passes the case's checks."""
    for op, value, mode in case.checks:
        if fair and mode == "strict":
            continue
        if not fair and mode == "fair":
            continue
        if op == "equals":
            ok = _equals(out, str(value), fair)
        elif op == "equals_input":
            ok = _equals(out, case.text, fair)
        elif op == "equals_nospace":
            ok = _no_space(normalise(out)) == _no_space(normalise(str(value)))
        elif op == "contains":
            ok = str(value) in out
        elif op == "not_contains":
            ok = str(value) not in out
        elif op == "regex":
            ok = re.search(str(value), out, re.MULTILINE) is not None
        elif op == "not_regex":
            ok = re.search(str(value), out, re.MULTILINE) is None
        elif op == "nonempty":
            ok = bool(out.strip())
        elif op == "max_seconds":
            ok = seconds < float(str(value))
        else:
            raise ValueError(op)
        if not ok:
            return False
    return True


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def _both(op: str, value: object = None) -> Check:
    return (op, value, "both")


# ---------------------------------------------------------------- discourse trimmer


def trimmer_cases(corpus: Path) -> list[Case]:
    root = corpus / "discourse-email_reply_trimmer"
    cases = []
    for path in sorted((root / "emails").glob("*.txt")):
        want = _read(root / "trimmed" / path.name)
        checks = [("equals", want, "strict"), ("equals", _drop_quoted(want), "fair")]
        cases.append(Case(path.stem, _read(path), checks))
    return cases


# ---------------------------------------------------------------- talon

# Upstream bodies of the two mis-extracted entries (talon tests/text_quotations_test.py).
_TALON_SHARE_LINE = [
    "reply On Wed, Apr 4, 2012 at 3:59 PM, bob@example.com wrote:\n> Hi",
    "reply--- On Wed, Apr 4, 2012 at 3:59 PM, me@domain.com wrote:\n> Hi",
]


def _first_text_part(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            assert isinstance(part, EmailMessage)
            return str(part.get_content())
    return ""


def _read_html(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1251")  # the Russian clients' fixtures


def talon_cases(corpus: Path) -> list[Case]:
    root = corpus / "talon"
    expected = json.loads((root / "expected.json").read_text())["expected"]
    cases = []
    for rel, exp in expected.items():
        path = root / rel
        if exp["kind"] == "signature":
            continue
        if rel.startswith("standard_replies/"):
            want = exp.get("expected_reply") or _read(root / exp["expected_reply_file"])
            checks = [("equals", want, "strict"), ("equals", _cut_signature(want), "fair")]
            cases.append(Case(rel, _first_text_part(path.read_bytes()), checks))
        elif "expected_reply_text" in exp:
            text = html_to_text(_read_html(path))
            cases.append(Case(rel, text, [_both("equals_nospace", exp["expected_reply_text"])]))
        elif "expected_html" in exp:
            want = html_to_text(exp["expected_html"])
            cases.append(Case(rel, html_to_text(_read_html(path)), [_both("equals_nospace", want)]))
        else:  # reply-quotations-share-block.eml, passed whole as plain text
            checks = [_both("nonempty"), _both("not_contains", "From")]
            cases.append(Case(rel, _read(path), checks))

    inline = json.loads((root / "inline_cases.json").read_text())["cases"]
    share_line = iter(_TALON_SHARE_LINE)
    for n, item in enumerate(inline):
        if item.get("decorators"):
            continue  # the upstream test patches talon's internals: nothing to compare
        name, text, want = item["test"].split("::")[1], item["input"], item["expected"]
        if name == "test_reply_and_quotation_splitter_share_line" and want == "reply":
            text = next(share_line)
        if item["function"] == "extract_from_html":
            checks = [_both("equals_nospace", html_to_text(want))]
            cases.append(Case(f"{name}#{n}", html_to_text(text), checks))
        else:
            cases.append(Case(f"{name}#{n}", text, [_both("equals", want)]))
    return cases


# ---------------------------------------------------------------- crisp

CRISP_COMMON = "COMMON_FIRST_FRAGMENT"
# Hand translations of the crisp tests that assert on fragments rather than on a text.
CRISP_CHECKS: dict[str, list[Check]] = {
    "test_reads_simple_body": [
        _both(
            "equals",
            "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
            "running a test?\nI am currently using the Java HTTP API.\n\n-Abhishek Kona",
        )
    ],
    # Bottom-posted: fragment 0 "Hi,", the answer below the quote is the author's too.
    "test_reads_bottom_post": [
        _both("regex", r"\AHi,"),
        _both("contains", "You can list the keys for the bucket"),
        _both("not_contains", "Hi folks"),
        _both("not_contains", "riak-users mailing list"),
    ],
    "test_recognizes_data_string_above_quote": [
        _both("regex", r"\AAwesome"),
        _both("not_contains", "Loader"),
        _both("not_regex", r"^On "),
    ],
    "test_complex_body_with_only_one_fragment": [_both("equals_input")],
    "test_deals_with_multiline_reply_headers": [
        _both("regex", r"\AI get"),
        _both("not_contains", "Was this"),
        _both("not_regex", r"^On "),
    ],
    "test_email_with_correct_signature": [
        _both("contains", "correct -- signature"),
        _both("not_contains", "rick"),
    ],
    "test_reads_email_with_signature_with_no_empty_line_above": [
        _both("contains", "with no empty line above"),
        _both("not_contains", "rick"),
    ],
    "test_one_is_not_one": [
        _both("contains", "One outstanding question"),
        _both("not_contains", "On Oct 1, 2012"),
    ],
    "test_email_not_a_signature": [_both("equals_input")],
    "test_email_not_a_signature_2": [_both("equals_input")],
    "text_email_reply_header": [
        _both("regex", r"^On the other hand"),
        _both("not_regex", r"^On Wed, Dec 9"),
        _both("not_contains", "Hey, Stranger"),
    ],
    "test_email_fr_2": [_both("equals", CRISP_COMMON)],
    "test_tricky_on_false_positive": [_both("equals_input")],
    "test_tricky_url_with_wrote": [
        _both("contains", "Check out this article"),
        _both("contains", "https://example.com"),
    ],
    "test_tricky_code_block": [_both("contains", "function sendEmail")],
    "test_tricky_from_in_body": [_both("contains", "This is the actual message content.")],
    "test_tricky_regards_in_sentence": [
        _both("contains", "with regards to the payment"),
        _both("contains", "This is the actual content that should be visible."),
    ],
    "test_tricky_multiple_dashes": [_both("contains", "Key Points")],
    "test_tricky_sent_from_in_content": [_both("contains", "sent from my iPhone app")],
    "test_tricky_nested_quotes": [
        _both("contains", "I agree with the points"),
        _both("not_contains", "Thanks for forwarding"),
    ],
    "test_tricky_double_signature": [
        _both("contains", "Thanks for your help"),
        _both("not_contains", "Senior Developer"),
    ],
    "test_tricky_timestamp_variations": [_both("equals_input")],
    "test_tricky_unicode_signatures": [_both("contains", "Thanks for the update")],
    "test_tricky_forward_header": [_both("contains", "See the forwarded message")],
    "test_tricky_inline_reply": [
        _both("contains", "I think option A is great."),
        _both("contains", "Option C is not suitable"),
        _both("not_contains", "What's your opinion"),
    ],
    "test_tricky_quote_without_header": [_both("contains", "I wanted to respond")],
    "test_tricky_html_entities": [_both("contains", "&gt; 100 and &lt; 200")],
    "test_parseReplied_with_multiple_quotes": [
        _both("not_contains", "Hi folks"),
        _both("not_contains", "riak-users mailing list"),
    ],
}
_CRISP_EXACT = (
    "expected_first_fragment_trimmed",
    "expected_visible_text",
    "expected_reply",
    "expected_first_fragment",
)


def crisp_cases(corpus: Path) -> list[Case]:
    root = corpus / "crisp-email-reply-parser"
    data = json.loads((root / "expected.json").read_text())
    common = data["COMMON_FIRST_FRAGMENT"]
    cases = []
    for test in data["tests"]:
        text = _read(root / test["fixtures"][0])
        if test["test"] in CRISP_CHECKS:
            checks = [
                (op, common if value == CRISP_COMMON else value, mode)
                for op, value, mode in CRISP_CHECKS[test["test"]]
            ]
        else:
            want = next(test[key] for key in _CRISP_EXACT if key in test)
            checks = [_both("equals", want)]
        cases.append(Case(test["test"], text, checks))
    return cases


# ---------------------------------------------------------------- alfonsrv


def _alfonsrv_checks(text: str, checks: Iterable[dict[str, object]]) -> list[Check]:
    out: list[Check] = []
    for check in checks:
        if "reply_count" in check:
            continue
        index, where, op, value = (check[k] for k in ("reply_index", "field", "op", "value"))
        value = str(value)
        sign_off = "strict" if _SIGN_OFF.match(value) else "both"
        if index == 0 and where == "body":
            # A sign-off that alfonsrv counts as signature stays in our output.
            out.append((str(op), value, sign_off if op == "not_contains" else "both"))
        elif index == 0 and where == "signatures" and op in ("contains", "equals") and value:
            out.append(("not_contains", value, sign_off))
        elif index == 0 and where == "headers" and op == "contains":
            out.append(_both("not_contains", value))
        elif index != 0 and op in ("contains", "equals") and value and text.count(value) == 1:
            # Older history must not reach the output. A value that occurs more than once
            # ("Hej") is also in the new text, so it cannot tell anything.
            out.append(_both("not_contains", value))
    return out


def alfonsrv_cases(corpus: Path) -> list[Case]:
    root = corpus / "alfonsrv-mail-parser-reply"
    cases = []
    for test in json.loads((root / "expected.json").read_text())["tests"]:
        text = _read(root / test["fixtures"][0])
        checks = _alfonsrv_checks(text, test["checks"])
        if checks:
            cases.append(Case(test["test"], text, checks))
    return cases


# ---------------------------------------------------------------- zapier

# Hand translations of the zapier tests that assert on fragments. Visible unquoted fragments
# must be in the output; hidden or quoted ones must not.
ZAPIER_CHECKS: dict[str, list[Check]] = {
    "test_simple_body": [
        _both("contains", "folks"),
        _both("not_contains", "riak-users"),
        ("not_contains", "-Abhishek Kona", "strict"),
    ],
    "test_reads_bottom_message": [
        _both("regex", r"\AHi,"),
        _both("contains", "You can list the keys for the bucket"),
        _both("not_regex", r"^\s*>"),
        _both("not_contains", "riak-users"),
    ],
    "test_reads_inline_replies": [
        _both("contains", "I will reply under this one"),
        _both("contains", "and under this."),
        _both("not_regex", r"^\s*>"),
        _both("not_contains", "Hey there, this is my signature"),
    ],
    "test_reads_top_post": [
        _both("regex", r"\AOh thanks."),
        _both("not_contains", "Russell Brown"),
        ("not_contains", "-Abhishek Kona", "strict"),
    ],
    "test_multiline_reply_headers": [
        _both("regex", r"\AI get"),
        _both("not_contains", "Was this caching"),
        _both("not_regex", r"^On "),
    ],
    "test_captures_date_string": [
        _both("regex", r"\AAwesome"),
        _both("not_contains", "Loader"),
        _both("not_regex", r"^On "),
    ],
    "test_complex_body_with_one_fragment": [_both("equals_input")],
    "test_verify_reads_signature_correct": [
        _both("contains", "correct -- signature"),
        _both("not_contains", "rick"),
    ],
    "test_deals_with_windows_line_endings": [
        _both("contains", ":+1:"),
        _both("not_contains", "Steps 0-2"),
    ],
    "test_reply_is_parsed": [_both("contains", "You can list the keys for the bucket")],
    "test_sent_from_iphone": [
        _both("contains", "Here is another email"),
        _both("not_contains", "Sent from my iPhone"),
    ],
    "test_email_one_is_not_on": [
        _both("contains", "One outstanding question"),
        _both("not_contains", "On Oct 1, 2012, at 11:55 PM, Dave Tapley wrote:"),
    ],
    "test_partial_quote_header": [
        _both("contains", "On your remote host you can run:"),
        _both("contains", "telnet 127.0.0.1 52698"),
        _both("contains", "This should connect to TextMate"),
    ],
    "test_email_headers_no_delimiter": [_both("equals", "And another reply!")],
    "test_multiple_on": [
        _both("regex", r"\AOn your remote host"),
        _both("contains", "This should connect to TextMate"),
        _both("not_contains", "On 9 Jan 2014"),
        _both("not_contains", "I am having an odd issue"),
    ],
    "test_pathological_emails": [_both("max_seconds", 1.0)],
    "test_doesnt_remove_signature_delimiter_in_mid_line": [_both("equals_input")],
}


def zapier_cases(corpus: Path) -> list[Case]:
    root = corpus / "zapier-email-reply-parser"
    cases = []
    for test in json.loads((root / "expected.json").read_text())["tests"]:
        text = _read(root / test["fixtures"][0])
        if "expected_reply" in test:
            checks = [_both("equals", test["expected_reply"])]
        else:
            checks = ZAPIER_CHECKS[test["test"]]
        cases.append(Case(test["test"], text, checks))
    return cases


# ---------------------------------------------------------------- running

SETS: dict[str, Callable[[Path], list[Case]]] = {
    "discourse-email_reply_trimmer": trimmer_cases,
    "talon": talon_cases,
    "crisp-email-reply-parser": crisp_cases,
    "alfonsrv-mail-parser-reply": alfonsrv_cases,
    "zapier-email-reply-parser": zapier_cases,
}


def evaluate(cases: list[Case], strip: Strip = strip_reply) -> tuple[Score, Score]:
    """(strict, fair) scores of `strip` on `cases`."""
    strict, fair = Score(), Score()
    for case in cases:
        started = time.perf_counter()
        out = strip(case.text)
        seconds = time.perf_counter() - started
        for score, is_fair in ((strict, False), (fair, True)):
            score.cases += 1
            if passes(case, out, seconds, is_fair):
                score.correct += 1
            else:
                score.failures.append(case.name)
    return strict, fair
