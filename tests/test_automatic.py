"""Automatic mail and bounces: each rule on hand-built mail, then rates on the corpus."""

from __future__ import annotations

import email
import email.policy
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail.automatic import detect_automatic
from mailbot.mail.bounce import parse_bounce
from tests import bounce_corpus

OWN = {"own_domains": ("4dustry.com",), "own_addresses": ("pomoc@4dustry.com",)}
CUSTOMER = {
    "From": "Jan Kowalski <jan@klient.pl>",
    "To": "pomoc@4dustry.com",
    "Subject": "Problem z fakturą",
    "Date": "Wed, 02 Dec 2026 10:00:00 +0100",
    "Message-ID": "<a1b2c3@klient.pl>",
    "MIME-Version": "1.0",
    "Content-Type": "text/plain; charset=utf-8",
}
BODY = "Dzień dobry,\nfaktura nr 12/2026 ma złą kwotę. Proszę o korektę.\n\nJan\n"
OUR_ID = "<mb.12.ack.abcd.xyz@4dustry.com>"
ORIGINAL_HEADERS = (
    "Return-Path: <pomoc@4dustry.com>\n"
    "Received: from mail.4dustry.com by mx.klient.pl; Wed, 2 Dec 2026 10:00:01 +0100\n"
    f"Message-ID: {OUR_ID}\n"
    "From: pomoc@4dustry.com\n"
    "To: anna@klient.pl\n"
    "Subject: [#12] Potwierdzenie zgloszenia\n"
)


def make(headers: dict[str, str | None] | None = None, body: str = BODY) -> EmailMessage:
    """A parsed message: the customer's headers, overridden (None removes one)."""
    merged: dict[str, str | None] = {**CUSTOMER, **(headers or {})}
    lines = [f"{name}: {value}" for name, value in merged.items() if value is not None]
    raw = ("\n".join(lines) + "\n\n" + body).encode("utf-8")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def report(
    report_type: str, second: str, third: str, headers: dict[str, str | None]
) -> EmailMessage:
    """A multipart/report with a text part, the machine-readable part and the returned part."""
    body = (
        "--B\nContent-Type: text/plain\n\nSee the report below.\n\n"
        f"--B\n{second}\n--B\n{third}\n--B--\n"
    )
    ctype = f'multipart/report; report-type={report_type}; boundary="B"'
    return make({"Content-Type": ctype, **headers}, body)


def dsn(action: str, status: str, **headers: str | None) -> EmailMessage:
    fields = (
        "Content-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.klient.pl\n\n"
        "Original-Recipient: rfc822; Anna@Klient.pl\n"
        "Final-Recipient: rfc822; anna@mx.klient.pl\n"
        f"Action: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 {status} User unknown\n"
    )
    daemon = {
        "From": "Mail Delivery System <MAILER-DAEMON@mx.klient.pl>",
        "Subject": "Undelivered Mail Returned to Sender",
        "Return-Path": "<>",
    }
    returned = "Content-Type: text/rfc822-headers\n\n" + ORIGINAL_HEADERS
    return report("delivery-status", fields, returned, {**daemon, **headers})


def kind(msg: EmailMessage) -> str | None:
    found = detect_automatic(msg, **OWN)
    return found.kind if found else None


# --- mail from people ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, body",
    [
        ({}, BODY),
        ({"Subject": "Re: [#12] Problem z fakturą", "In-Reply-To": OUR_ID}, "> cytat\nDziękuję"),
        # Outlook puts it on ordinary mail and meeting requests: not a marker on its own.
        ({"X-Auto-Response-Suppress": "All"}, BODY),
        ({"Auto-Submitted": "no"}, BODY),
        ({"Subject": "Nieobecność pracownika w systemie"}, BODY),
        ({"Subject": "Automatyczna odpowiedź nie działa w module CRM"}, BODY),
        ({"Subject": "Out of office hours support"}, BODY),
        ({"Subject": "Re: Automatic reply: [#12] Problem"}, BODY),
        (
            {"Subject": "Delivery failed - zamówienie 123"},
            "Your delivery could not be delivered to our plant, the truck was rejected.",
        ),
        (
            {"Subject": "RE: Undeliverable mail"},
            "Hi, I got this when writing to you:\n550 5.1.1 <pomoc@4dustry.com>: User unknown\n",
        ),
        (
            {"Subject": "Fwd: Undelivered Mail Returned to Sender"},
            "Why does this bounce?\n\n---------- Forwarded message ---------\n"
            "From: MAILER-DAEMON@mx.klient.pl\n\nThis is the mail system at host mx.\n"
            "I'm sorry to have to inform you that your message could not be delivered.\n"
            "<anna@klient.pl>: host mx said: 550 5.1.1 User unknown\n",
        ),
        # A colleague in Thunderbird: Message-ID in our domain, but a person.
        ({"From": "Ewa Nowak <ewa@4dustry.com>", "Message-ID": "<x9@4dustry.com>"}, BODY),
        ({"X-Loop": "someone-else@klient.pl"}, BODY),
        ({"Return-Path": "<jan@klient.pl>", "Precedence": "first-class"}, BODY),
        ({"Content-Type": "text/plain; charset=uft-8"}, BODY),
    ],
)
def test_mail_from_a_person_is_not_automatic(headers: dict[str, str | None], body: str) -> None:
    msg = make(headers, body)
    assert detect_automatic(msg, **OWN) is None
    assert parse_bounce(msg) is None


def test_bounce_forwarded_as_attachment_by_a_person_is_theirs() -> None:
    inner = dsn("failed", "5.1.1").as_string()
    body = (
        "--F\nContent-Type: text/plain; charset=utf-8\n\nDlaczego to wróciło?\n\n"
        f"--F\nContent-Type: message/rfc822\n\n{inner}\n--F--\n"
    )
    msg = make(
        {
            "Subject": "PD: Undelivered Mail Returned to Sender",
            "Content-Type": 'multipart/mixed; boundary="F"',
        },
        body,
    )
    assert detect_automatic(msg, **OWN) is None


# --- auto-replies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Automatyczna odpowiedź: [#12] Problem z fakturą",
        "Odpowiedź automatyczna: Problem",
        "=?utf-8?q?Automatyczna_odpowied=C5=BA=3A_Problem?=",
        "Nieobecność",
        "Nieobecność w biurze",
        "Nieobecny do 15.12",
        "Jestem na urlopie (2-15 grudnia)",
        "Out of Office: Problem z fakturą",
        "Out of Office AutoReply: Problem",
        "Automatic reply: Problem",
        "Auto reply: Problem",
        "Autoreply: Problem",
        "Away until May 5",
        "Away from the office: back Monday",
        "Abwesenheitsnotiz: Problem",
        "Réponse automatique : Problem",
    ],
)
def test_out_of_office_subjects_are_auto_replies(subject: str) -> None:
    found = detect_automatic(make({"Subject": subject}), **OWN)
    assert found is not None and found.kind == "auto-reply"
    assert found.reason.startswith("out-of-office subject")


@pytest.mark.parametrize(
    "headers, reason",
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "Auto-Replied (vacation)"}, "Auto-Submitted: auto-replied"),
        ({"Precedence": "auto_reply"}, "Precedence: auto_reply"),
        ({"X-Autoreply": "yes"}, "x-autoreply header"),
        ({"X-Autorespond": "Jestem na urlopie"}, "x-autorespond header"),
        ({"X-Apple-Action": "VACATION"}, "X-Apple-Action: vacation"),
    ],
)
def test_auto_reply_headers(headers: dict[str, str], reason: str) -> None:
    found = detect_automatic(make(headers), **OWN)
    assert found is not None and (found.kind, found.reason) == ("auto-reply", reason)


def test_auto_generated_and_exchange_rule_mail() -> None:
    found = detect_automatic(make({"Auto-Submitted": "auto-generated"}), **OWN)
    assert found is not None and found.kind == "auto-generated"
    rule = detect_automatic(make({"X-MS-Exchange-Inbox-Rules-Loop": "jan@klient.pl"}), **OWN)
    assert rule is not None and rule.kind == "auto-generated"
    assert kind(make({"X-Autoreply": "no"})) is None


# --- lists, loops, machine senders --------------------------------------------------------


@pytest.mark.parametrize(
    "headers, expected_kind, reason",
    [
        ({"Precedence": "bulk"}, "list", "Precedence: bulk"),
        ({"Precedence": " List "}, "list", "Precedence: list"),
        ({"Precedence": "junk"}, "list", "Precedence: junk"),
        ({"List-Id": "Newsletter <news.klient.pl>"}, "list", "List-Id present"),
        ({"List-Unsubscribe": "<mailto:unsub@klient.pl>"}, "list", "List-Unsubscribe present"),
        ({"Return-Path": "<>"}, "auto-generated", "null Return-Path"),
        ({"From": "MAILER-DAEMON@mx.klient.pl"}, "bounce", "sender mailer-daemon@mx.klient.pl"),
        (
            {"From": "Postmaster <POSTMASTER@klient.pl>"},
            "auto-generated",
            "sender postmaster@klient.pl",
        ),
        ({"From": "Sklep <noreply@sklep.pl>"}, "auto-generated", "sender noreply@sklep.pl"),
        ({"From": "no-reply@sklep.pl"}, "auto-generated", "sender no-reply@sklep.pl"),
        ({"From": "DoNotReply@bank.pl"}, "auto-generated", "sender donotreply@bank.pl"),
        ({"From": "do-not-reply+x@bank.pl"}, "auto-generated", "sender do-not-reply+x@bank.pl"),
        (
            {"Return-Path": "<noreply@crm.klient.pl>"},
            "auto-generated",
            "sender noreply@crm.klient.pl",
        ),
        ({"X-Loop": "Pomoc@4Dustry.com"}, "auto-generated", "X-Loop names pomoc@4dustry.com"),
        (
            {"From": "Pomoc <POMOC@4dustry.com>"},
            "auto-generated",
            "From is our own address pomoc@4dustry.com",
        ),
        (
            {"Message-ID": "<mb.3.ack.x.y@4DUSTRY.com>"},
            "auto-generated",
            "Message-ID from our domain 4dustry.com",
        ),
    ],
)
def test_generic_rules(headers: dict[str, str], expected_kind: str, reason: str) -> None:
    found = detect_automatic(make(headers), **OWN)
    assert found is not None
    assert (found.kind, found.reason) == (expected_kind, reason)


def test_own_rules_need_own_addresses_and_domains() -> None:
    msg = make({"Message-ID": OUR_ID, "X-Loop": "pomoc@4dustry.com"})
    assert detect_automatic(msg) is None
    assert kind(msg) == "auto-generated"


# --- bounces ------------------------------------------------------------------------------


def test_dsn_with_original_headers() -> None:
    msg = dsn("failed", "5.1.1", **{"Auto-Submitted": "auto-replied"})
    found = detect_automatic(msg, **OWN)
    assert found is not None
    assert (found.kind, found.reason) == ("bounce", "DSN (multipart/report)")
    bounce = found.bounce
    assert bounce is not None
    assert bounce.kind == "dsn" and bounce.permanent and bounce.status == "5.1.1"
    assert bounce.recipients == ("anna@klient.pl", "anna@mx.klient.pl")
    assert bounce.original_message_id == OUR_ID


def test_dsn_delayed_is_temporary_and_failed_is_permanent_even_with_4xx() -> None:
    delayed = parse_bounce(dsn("delayed", "4.4.1", Subject="Delivery Status Notification (Delay)"))
    assert delayed is not None and not delayed.permanent and delayed.status == "4.4.1"
    # The MTA gave up (expired): the message is dead although the status class is 4.
    expired = parse_bounce(dsn("failed", "4.4.7"))
    assert expired is not None and expired.permanent and expired.status == "4.4.7"


def test_success_dsn_is_not_a_bounce_but_still_automatic() -> None:
    msg = dsn("delivered", "2.0.0", Subject="Delivery Status Notification (Success)")
    assert parse_bounce(msg) is None
    assert kind(msg) == "auto-generated"


def test_dsn_with_attached_original_message() -> None:
    fields = (
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; anna@klient.pl\nAction: failed\nStatus: 5.2.2\n"
    )
    returned = "Content-Type: message/rfc822\n\n" + ORIGINAL_HEADERS + "\nTreść\n"
    msg = report("delivery-status", fields, returned, {"From": "postmaster@klient.pl"})
    bounce = parse_bounce(msg)
    assert bounce is not None and bounce.original_message_id == OUR_ID
    assert bounce.recipients == ("anna@klient.pl",) and bounce.status == "5.2.2"


EXIM = (
    "This message was created automatically by mail delivery software.\n\n"
    "A message that you sent could not be delivered to one or more of its\n"
    "recipients. This is a permanent error. The following address(es) failed:\n\n"
    "  anna@klient.pl\n"
    "    SMTP error from remote mail server after RCPT TO:<anna@klient.pl>:\n"
    "    550 5.1.1 <anna@klient.pl>: Recipient address rejected: User unknown\n\n"
    "------ This is a copy of the message, including all the headers. ------\n\n"
    + ORIGINAL_HEADERS
    + "\nTreść potwierdzenia\n"
)
QMAIL = (
    "Hi. This is the qmail-send program at mx.klient.pl.\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
    "<anna@klient.pl>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
    "--- Below this line is a copy of the message.\n\n" + ORIGINAL_HEADERS + "\nTreść\n"
)
POLISH = (
    "Nie można dostarczyć wiadomości do następujących adresatów:\n\n"
    "anna@klient.pl\nSkrzynka odbiorcza adresata jest pełna.\n\n"
    "Oryginalna wiadomość:\n\n" + ORIGINAL_HEADERS
)


@pytest.mark.parametrize(
    "headers, body",
    [
        (
            {
                "From": "Mail Delivery System <Mailer-Daemon@mx.klient.pl>",
                "Subject": "Mail delivery failed: returning message to sender",
                "X-Failed-Recipients": "anna@klient.pl",
                "Auto-Submitted": "auto-replied",
            },
            EXIM,
        ),
        # The same without the tell-tale headers: sender and text are enough.
        (
            {
                "From": "Mail Delivery System <Mailer-Daemon@mx.klient.pl>",
                "Subject": "Mail delivery failed: returning message to sender",
            },
            EXIM,
        ),
        ({"From": "MAILER-DAEMON@mx.klient.pl", "Subject": "failure notice"}, QMAIL),
        # Postmaster of a relay, subject without the usual words: the qmail banner decides.
        ({"From": "admin@relay.klient.pl", "Subject": "failure notice"}, QMAIL),
        (
            {
                "From": "Administrator poczty <postmaster@klient.pl>",
                "Subject": "Niedostarczona wiadomość: [#12] Potwierdzenie zgloszenia",
            },
            POLISH,
        ),
    ],
)
def test_non_standard_bounces(headers: dict[str, str], body: str) -> None:
    found = detect_automatic(make(headers, body), **OWN)
    assert found is not None and found.kind == "bounce"
    bounce = found.bounce
    assert bounce is not None and bounce.kind == "nonstandard" and bounce.permanent
    assert bounce.recipients == ("anna@klient.pl",)
    assert bounce.original_message_id == OUR_ID


def test_non_standard_delay_warning_is_temporary() -> None:
    body = (
        "This is an automatically generated Delivery Status Notification\n\n"
        "THIS IS A WARNING MESSAGE ONLY.\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\n"
        "Delivery to the following recipient has been delayed:\n\n     anna@klient.pl\n\n"
        "Message will be retried for 2 more day(s)\n\n----- Original message -----\n\n"
        + ORIGINAL_HEADERS
    )
    msg = make(
        {
            "From": "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            "Subject": "Delivery Status Notification (Delay)",
        },
        body,
    )
    bounce = parse_bounce(msg)
    assert bounce is not None and not bounce.permanent
    assert bounce.recipients == ("anna@klient.pl",)


# --- other reports ------------------------------------------------------------------------


def test_arf_abuse_report() -> None:
    feedback = (
        "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\n"
        "User-Agent: Yahoo!-Mail-Feedback/1.0\nVersion: 1\n"
    )
    returned = "Content-Type: message/rfc822\n\n" + ORIGINAL_HEADERS
    msg = report(
        "feedback-report",
        feedback,
        returned,
        {"From": "feedback@arf.mail.yahoo.com", "Subject": "FW: Potwierdzenie"},
    )
    assert parse_bounce(msg) is None
    found = detect_automatic(msg, **OWN)
    assert found is not None and found.kind == "abuse-report"


def test_mdn_read_receipt() -> None:
    mdn = (
        "Content-Type: message/disposition-notification\n\n"
        "Final-Recipient: rfc822; jan@klient.pl\n"
        f"Original-Message-ID: {OUR_ID}\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n"
    )
    returned = "Content-Type: text/rfc822-headers\n\n" + ORIGINAL_HEADERS
    msg = report(
        "disposition-notification",
        mdn,
        returned,
        {"Subject": "Przeczytano: [#12] Potwierdzenie zgloszenia"},
    )
    assert parse_bounce(msg) is None
    found = detect_automatic(msg, **OWN)
    assert found is not None and found.kind == "receipt"


# --- malformed and hostile mail -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'From: foo@bar, "x" <\nSubject: Out of office\n\nhi',  # the registry raises IndexError
        b"Message-ID: <[>\nFrom: jan@klient.pl\n\nhi",  # ditto
        b"Resent-From: <\nReturn-Path: <>\n\nhi",
        b"From: =?utf-8?q?broken\nSubject: =?x-unknown?b?AAAA?=\n\n",
        b'Content-Type: multipart/report; report-type="\nFrom: \xff\xfe\n\n--x--',
        b"",
        b"\x00\x01\x02",
    ],
)
def test_malformed_headers_never_raise(raw: bytes) -> None:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    detect_automatic(msg, **OWN)
    parse_bounce(msg)


HEADER_NAMES = st.sampled_from(
    [
        "From",
        "Return-Path",
        "Subject",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "Message-ID",
        "X-Loop",
        "Content-Type",
        "X-Failed-Recipients",
        "Content-Transfer-Encoding",
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    headers=st.lists(st.tuples(HEADER_NAMES, st.text(max_size=60)), max_size=8),
    body=st.binary(max_size=400),
)
def test_arbitrary_input_never_raises(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "".join(f"{k}: {v}\n" for k, v in headers if "\n" not in v and "\r" not in v)
    msg = email.message_from_bytes(
        head.encode("utf-8", "surrogateescape") + b"\n" + body, policy=email.policy.default
    )
    detect_automatic(msg, **OWN)


@pytest.mark.parametrize(
    "body",
    [
        b"Received: " + b"a" * 400_000 + b"\n" + b"x@y.com " * 50_000,
        b"\n \n" * 200_000,
        b" " * 600_000,
        b"<a" * 200_000,
        b"a@" + b"a." * 200_000,
    ],
)
def test_hostile_bodies_are_handled_quickly(body: bytes) -> None:
    raw = b"From: MAILER-DAEMON@x.pl\nSubject: Undelivered Mail\nContent-Type: text/html\n\n"
    msg = email.message_from_bytes(raw + body, policy=email.policy.default)
    start = time.perf_counter()
    assert kind(msg) == "bounce"
    assert time.perf_counter() - start < 2.0


# --- the corpus ---------------------------------------------------------------------------
# Thresholds sit just below what the code achieves (see `python -m bench.bounces`), so that a
# regression fails. tests/bounce_corpus.py holds the labelling rules, for the bench as for us.


# The tests reading `sisimai` (seconds to compute) run on one worker, which computes it once.
SISIMAI_GROUP = pytest.mark.xdist_group("sisimai-runs")


@pytest.fixture(scope="module")
def sisimai(corpus: Path):
    return {run.title: run for run in bounce_corpus.sisimai_runs(corpus)}


@SISIMAI_GROUP
def test_sisimai_bounces_are_never_human(sisimai) -> None:
    for run in sisimai.values():
        tally = run.groups.get("bounce")
        if tally is None:
            continue
        assert tally.human == [], run.title
        # Only bounces a person forwarded ("Fwd: Returned mail…") count as human mail.
        assert len(tally.forwards) <= 1, run.title


@SISIMAI_GROUP
def test_sisimai_recognition_rates(sisimai) -> None:
    run = sisimai["sisimai maildir-bsd, expected.json"]
    bounces = run.groups["bounce"]
    assert bounces.total >= 550
    assert bounces.right / bounces.total >= 0.99  # kind "bounce" (99.6 %)
    assert bounces.parsed / bounces.total >= 0.99  # a Bounce object came back
    assert bounces.with_recipients / bounces.total >= 0.96  # 98.2 %
    for want in ("auto-reply", "abuse-report", "not-failure"):
        tally = run.groups[want]
        assert tally.right == tally.total, want
    assert all(not r.non_bounces_called_bounce() for r in sisimai.values())
    crlf = sisimai["sisimai maildir-dos-crlf, labelled by file name"].groups["bounce"]
    assert crlf.right == crlf.total


@SISIMAI_GROUP
def test_sisimai_look_alikes_are_not_bounces(sisimai) -> None:
    tally = sisimai["sisimai maildir-not-bounce (must not be bounces)"].groups["not-bounce"]
    assert tally.human == ["is-not-bounce-01.eml", "is-not-bounce-02.eml"]


def test_other_bounce_fixtures(corpus: Path) -> None:
    tally = bounce_corpus.other_bounces(corpus).groups["bounce"]
    assert tally.total >= 20 and tally.right == tally.total == tally.parsed


def test_flufl_bounces_and_failed_addresses(corpus: Path) -> None:
    run, score = bounce_corpus.flufl(corpus)
    tally = run.groups["bounce"]
    assert tally.total >= 100
    assert tally.right == tally.total  # simple_20 (a "RE:" notice) by flufl.bounce
    assert score.address_ok / score.parsed >= 0.96  # 98.0 %
    assert score.permanence_ok / score.permanence_cases >= 0.97  # 100 %


@SISIMAI_GROUP
def test_original_message_id_is_found(corpus: Path, sisimai) -> None:
    flufl_run, _ = bounce_corpus.flufl(corpus)
    samples = [s for run in [*sisimai.values(), flufl_run] for s in run.bounces]
    score = bounce_corpus.message_id_rate(samples)
    assert score.with_headers >= 700
    assert score.extracted / score.with_headers >= 0.98  # 100 %


def test_human_mail_in_the_corpus_is_not_flagged(corpus: Path) -> None:
    score = bounce_corpus.human_mail(corpus)
    assert score.checked >= 100
    assert score.false_positives == []
