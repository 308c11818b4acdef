"""The corpus's bounces and automatic mail, labelled, and `detect_automatic`'s results on them.

Used by tests/test_automatic.py (rates that must not regress) and `python -m bench.bounces`
(the figures). Every message goes through `detect_automatic` with own domain 4dustry.com and
own address pomoc@4dustry.com, as in production, and is tallied by its expected kind.

* sisimai maildir-bsd with expected.json: reason "vacation" must be "auto-reply",
  "feedback" "abuse-report", "delivered" anything but "bounce", every other reason is a
  bounce. Its 47 files without an expectation, maildir-dos-crlf and mailbox/mbox-0 are
  labelled by file name (arf-* abuse, rfc3834-* auto-reply, else bounce).
  maildir-not-bounce must not be bounces; one of its three files is disputed (see DISPUTED).
* A bounce forwarded by a person ("Fwd: Returned mail…" from their own address) is human
  mail by design and is counted apart, never as a miss.
* flufl-bounce (expected.json): recognition, failed-address extraction (the expected
  addresses must be a subset of `Bounce.recipients`) and permanent/temporary agreement.
* Original Message-ID: among parsed bounces whose decoded body shows the returned message's
  headers (a Message-ID line or an attached message's Message-ID), how often
  `Bounce.original_message_id` is one of those IDs.
* Human mail: person-to-person fixtures (talon replies, php-imap, RT, cpython, helpdesk,
  discourse) must not be flagged; the remaining non-bounce fixtures (spam, lists, malformed
  MIME) are shown by kind, for information.
"""

from __future__ import annotations

import email
import email.policy
import json
import mailbox
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from mailbot.mail.automatic import Automatic, detect_automatic

OWN_DOMAINS = ("4dustry.com",)
OWN_ADDRESSES = ("pomoc@4dustry.com",)

_FORWARD_RE = re.compile(r"^\s*(?:fwd?|tr|wg|pd)\s*:", re.IGNORECASE)
_MESSAGE_ID_RE = re.compile(
    rb"^[ \t>]*Message-I[dD]:[ \t]*(?:\r?\n[ \t]+)?<([^<>\s]+)>", re.MULTILINE | re.IGNORECASE
)
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")

# Person-to-person fixtures. The ones below are machine mail by their own headers, which the
# rules rightly flag: they are listed, not counted as false positives.
HUMAN_SETS = (
    "talon/standard_replies",
    "talon/reply-quotations-share-block.eml",
    "webklex-php-imap/messages",
    "request-tracker/emails",
    "cpython-test_email/data",
    "django-helpdesk/test_files",
    "discourse/emails",
)
NOT_HUMAN = {
    "webklex-php-imap/messages/1366671050@github.com.eml": "GitHub notification, Precedence: list",
    "request-tracker/emails/8859-15-message-series/dir": "rt-users list post, Precedence: bulk",
    "webklex-php-imap/messages/example_bounce.eml": "bounce",
    "webklex-php-imap/messages/issue-382.eml": "from MAILER-DAEMON",
    "webklex-php-imap/messages/issue-462.eml": "Exchange NDR",
    "request-tracker/emails/multipart-report": "DSN",
    "cpython-test_email/data/msg_16.txt": "DSN",
    "discourse/emails/auto_generated_header.eml": "Auto-Submitted: auto-generated",
    "discourse/emails/auto_generated_precedence.eml": "Precedence: list",
    "discourse/emails/auto_reply.eml": "Auto-Submitted: auto-generated",
    "discourse/emails/bounced_email_multiple_status_codes.eml": "DSN",
}
OTHER_BOUNCES = (
    "flanker/messages/bounce",
    "mikel-mail/emails/multipart_report_emails",
    "discourse/emails/bounced_email_multiple_status_codes.eml",
    "cpython-test_email/data/msg_16.txt",
    "webklex-php-imap/messages/example_bounce.eml",
    "request-tracker/emails/multipart-report",
    "salmon/data/bounce.msg",
    "spamscope-mail-parser/mails/mail_malformed_2",
)
NOT_REPORTS = ("flanker/messages/complaints", "flanker/messages/disposition-notification.eml")
# sisimai keeps this file among its non-bounces (a regression sample for an rb-sisimai
# issue), but to us it is a bounce: Return-Path <>, From postmaster, Auto-Submitted,
# "an email you sent was rejected ... reject reason: Mailbox full".
DISPUTED = {"rb-issue-368-bug.eml": "postmaster: 'email you sent was rejected: Mailbox full'"}
LABELS = {
    "bounce": "bounces",
    "auto-reply": "auto-replies",
    "abuse-report": "abuse reports",
    "not-failure": "delivered (success DSN)",
    "not-bounce": "look-alikes",
}
NOT_BOUNCE = frozenset({"not-failure", "not-bounce"})

Sample = tuple[str, bytes, "Automatic | None"]


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def classify(raw: bytes) -> Automatic | None:
    return detect_automatic(parse(raw), own_domains=OWN_DOMAINS, own_addresses=OWN_ADDRESSES)


def is_person_forward(raw: bytes) -> bool:
    """A bounce someone forwarded from their own mailbox ("Fwd: …", not from a daemon)."""
    msg = parse(raw)
    sender = str(msg.get("from", "")).lower()
    return bool(_FORWARD_RE.match(str(msg.get("subject", "")))) and "daemon" not in sender


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:5.1f}%" if whole else "    -"


# --- tallies --------------------------------------------------------------------------------


@dataclass
class Tally:
    """Outcomes for one labelled group of messages."""

    want: str
    total: int = 0
    right: int = 0
    caught: int = 0
    parsed: int = 0
    with_recipients: int = 0
    human: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    forwards: list[str] = field(default_factory=list)

    def add(self, name: str, found: Automatic | None) -> None:
        self.total += 1
        bounce = found.bounce if found else None
        self.parsed += bounce is not None
        self.with_recipients += bool(bounce and bounce.recipients)
        if found is None:
            self.human.append(name)
            self.right += self.want in NOT_BOUNCE
            return
        self.caught += 1
        if found.kind == self.want or (self.want in NOT_BOUNCE and found.kind != "bounce"):
            self.right += 1
        else:
            note = DISPUTED.get(name.rsplit("/", 1)[-1])
            self.wrong.append(
                f"{name} ({found.kind}: {found.reason})" + (f" DISPUTED: {note}" if note else "")
            )

    def line(self) -> str:
        text = (
            f"  {LABELS[self.want]:<26}{self.total:>5} {pct(self.right, self.total)} "
            f"{pct(self.caught, self.total)} {len(self.human):>5}"
        )
        if self.want == "bounce":
            text += f" {pct(self.parsed, self.total)} {pct(self.with_recipients, self.total)}"
        if self.forwards:
            text += f"   +{len(self.forwards)} forwarded by a person"
        return text

    def details(self) -> Iterator[str]:
        human = [] if self.want in NOT_BOUNCE else self.human  # right answers there
        for title, names in (
            ("human", human),
            ("wrong kind", self.wrong),
            ("forwarded by a person", self.forwards),
        ):
            for name in names:
                yield f"      {title}: {name}"


@dataclass
class Run:
    """The groups of one section, and its bounces (kept for the Message-ID figure)."""

    title: str
    groups: dict[str, Tally] = field(default_factory=dict)
    bounces: list[Sample] = field(default_factory=list)

    def add(self, want: str, name: str, raw: bytes) -> Automatic | None:
        found = classify(raw)
        tally = self.groups.setdefault(want, Tally(want))
        if want == "bounce" and found is None and is_person_forward(raw):
            tally.forwards.append(name)
            return found
        tally.add(name, found)
        if want == "bounce":
            self.bounces.append((name, raw, found))
        return found

    def non_bounces_called_bounce(self) -> list[str]:
        return [
            w
            for want, t in self.groups.items()
            if want != "bounce"
            for w in t.wrong
            if ("(bounce:" in w and "DISPUTED" not in w)
        ]

    def report(self, verbose: bool) -> None:
        print(self.title)
        for tally in self.groups.values():
            print(tally.line())
            if verbose:
                for detail in tally.details():
                    print(detail)
        print(f"  non-bounces called bounce: {len(self.non_bounces_called_bounce())}")


# --- sisimai and the other bounce fixtures --------------------------------------------------


def _want_from_reasons(reasons: set[str]) -> str:
    if reasons == {"vacation"}:
        return "auto-reply"
    if "feedback" in reasons:
        return "abuse-report"
    if reasons == {"delivered"}:
        return "not-failure"
    return "bounce"


def _want_from_name(name: str) -> str:
    if name.startswith("arf-"):
        return "abuse-report"
    if name.startswith("rfc3834-"):
        return "auto-reply"
    return "bounce"


def sisimai_expected(corpus: Path) -> dict[str, dict]:
    path = corpus / "sisimai-set-of-emails" / "expected.json"
    return json.loads(path.read_text())["expected"]


def sisimai_labelled(corpus: Path) -> Run:
    root = corpus / "sisimai-set-of-emails"
    run = Run("sisimai maildir-bsd, expected.json")
    for rel, entry in sorted(sisimai_expected(corpus).items()):
        reasons = {r["reason"] for r in entry["recipients"]}
        run.add(_want_from_reasons(reasons), rel, (root / rel).read_bytes())
    return run


def sisimai_by_name(corpus: Path, folder: str, skip: Iterable[str] = ()) -> Run:
    root = corpus / "sisimai-set-of-emails"
    skipped = set(skip)
    run = Run(f"sisimai {folder}, labelled by file name")
    for path in sorted((root / folder).glob("*.eml")):
        rel = f"{folder}/{path.name}"
        if rel not in skipped:
            run.add(_want_from_name(path.name), rel, path.read_bytes())
    return run


def sisimai_not_bounce(corpus: Path) -> Run:
    run = Run("sisimai maildir-not-bounce (must not be bounces)")
    for path in sorted((corpus / "sisimai-set-of-emails/maildir-not-bounce").glob("*.eml")):
        run.add("not-bounce", path.name, path.read_bytes())
    return run


def sisimai_mbox(corpus: Path) -> Run:
    run = Run("sisimai mailbox/mbox-0 (all bounces)")
    box = mailbox.mbox(corpus / "sisimai-set-of-emails/mailbox/mbox-0", create=False)
    for index, message in enumerate(box):
        run.add("bounce", f"mbox-0#{index}", message.as_bytes())
    return run


def other_bounces(corpus: Path) -> Run:
    run = Run("other bounce fixtures (flanker, mikel, discourse, cpython, php-imap, RT, ...)")
    for path in _files(corpus, OTHER_BOUNCES):
        run.add("bounce", str(path.relative_to(corpus)), path.read_bytes())
    return run


def _files(corpus: Path, entries: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for entry in entries:
        path = corpus / entry
        found.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return found


def sisimai_runs(corpus: Path) -> list[Run]:
    return [
        sisimai_labelled(corpus),
        sisimai_by_name(corpus, "maildir-bsd", skip=sisimai_expected(corpus)),
        sisimai_by_name(corpus, "maildir-dos-crlf"),
        sisimai_mbox(corpus),
        sisimai_not_bounce(corpus),
    ]


# --- flufl ----------------------------------------------------------------------------------


@dataclass
class FluflScore:
    """flufl.bounce figures beyond recognition."""

    parsed: int = 0
    address_ok: int = 0
    permanence_cases: int = 0
    permanence_ok: int = 0
    problems: list[str] = field(default_factory=list)


def flufl_expected(corpus: Path) -> dict[str, tuple[set[str], set[str]]]:
    """file -> (addresses that must be found, failure kinds), merged over detector entries."""
    wanted: dict[str, tuple[set[str], set[str]]] = {}
    entries = json.loads((corpus / "flufl-bounce" / "expected.json").read_text())["expected"]
    for entry in entries:
        if entry.get("note", "").startswith("negative"):
            continue  # a detector-specific negative test, not about the message
        addrs, failures = wanted.setdefault(entry["file"], (set(), set()))
        addrs.update(a.lower() for a in entry["expected_addresses"])
        failures.add(entry["failure"])
    return wanted


def flufl(corpus: Path) -> tuple[Run, FluflScore]:
    run, score = Run("flufl-bounce"), FluflScore()
    for rel, (addrs, failures) in sorted(flufl_expected(corpus).items()):
        found = run.add("bounce", rel, (corpus / "flufl-bounce" / rel).read_bytes())
        _score_flufl(score, rel, found, addrs, failures)
    return run, score


def _score_flufl(
    score: FluflScore, rel: str, found: Automatic | None, addrs: set[str], failures: set[str]
) -> None:
    bounce = found.bounce if found else None
    if bounce is None:
        score.problems.append(f"not parsed: {rel}")
        return
    score.parsed += 1
    if addrs <= set(bounce.recipients):
        score.address_ok += 1
    else:
        score.problems.append(f"addresses {rel}: want {sorted(addrs)} got {bounce.recipients}")
    if failures in ({"permanent"}, {"temporary"}):
        score.permanence_cases += 1
        if bounce.permanent == ("permanent" in failures):
            score.permanence_ok += 1
        else:
            score.problems.append(f"permanence {rel}: want {next(iter(failures))}")


# --- original Message-ID --------------------------------------------------------------------


def body_message_ids(raw: bytes) -> set[str]:
    """Message-IDs shown after the notice's own header block (decoded parts, attachments)."""
    msg = parse(raw)
    ids: set[str] = set()
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and inner[0].get("message-id"):
                ids.add(str(inner[0].get("message-id")).strip().strip("<>"))
        elif not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                ids.update(m.decode("latin-1") for m in _MESSAGE_ID_RE.findall(payload))
    if not ids:  # broken MIME: search the raw body
        parts = _HEADER_END_RE.split(raw, maxsplit=1)
        if len(parts) == 2:
            ids.update(m.decode("latin-1") for m in _MESSAGE_ID_RE.findall(parts[1]))
    return {i.lower() for i in ids}


@dataclass
class IdScore:
    """How often the original Message-ID is found where the bounce shows it."""

    with_headers: int = 0
    extracted: int = 0
    extra: int = 0  # extracted although the check saw no ID (e.g. an encoded original)
    misses: list[str] = field(default_factory=list)


def message_id_rate(samples: Iterable[Sample]) -> IdScore:
    score = IdScore()
    for name, raw, found in samples:
        bounce = found.bounce if found else None
        if bounce is None:
            continue
        ids = body_message_ids(raw)
        got = (bounce.original_message_id or "").strip("<>").lower()
        if not ids:
            score.extra += bool(got)
        elif got in ids:
            score.with_headers += 1
            score.extracted += 1
        else:
            score.with_headers += 1
            score.misses.append(f"{name} (got {bounce.original_message_id})")
    return score


# --- human mail -----------------------------------------------------------------------------


def corpus_messages(corpus: Path) -> list[str]:
    inventory = json.loads((corpus / "INVENTORY.json").read_text())["files"]
    return sorted(rel for rel, info in inventory.items() if info.get("kind") == "message")


@dataclass
class HumanScore:
    """Person-to-person fixtures flagged as automatic (false positives)."""

    checked: int = 0
    false_positives: list[str] = field(default_factory=list)
    machine: list[str] = field(default_factory=list)  # NOT_HUMAN fixtures, for the record


def human_mail(corpus: Path) -> HumanScore:
    score = HumanScore()
    for rel in corpus_messages(corpus):
        if not rel.startswith(HUMAN_SETS):
            continue
        found = classify((corpus / rel).read_bytes())
        if rel in NOT_HUMAN:
            score.machine.append(f"{rel}: {found.kind if found else 'human'} ({NOT_HUMAN[rel]})")
            continue
        score.checked += 1
        if found:
            score.false_positives.append(f"{rel}: {found.kind} ({found.reason})")
    return score


def other_mail(corpus: Path) -> tuple[Counter[str], list[str]]:
    """Kinds over the remaining non-bounce fixtures (spam, lists, malformed MIME)."""
    kinds: Counter[str] = Counter()
    flagged: list[str] = []
    skip = (*HUMAN_SETS, *OTHER_BOUNCES, *NOT_REPORTS, "sisimai-set-of-emails", "flufl-bounce")
    for rel in corpus_messages(corpus):
        if rel.startswith(skip):
            continue
        found = classify((corpus / rel).read_bytes())
        kinds[found.kind if found else "human"] += 1
        if found:
            flagged.append(f"{rel}: {found.kind} ({found.reason})")
    return kinds, flagged
