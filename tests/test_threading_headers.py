"""Threading headers on the wire: ids exactly as received, folded between ids, and customer mail
that names only what the customer has seen, for Exchange Online, Gmail, Apple Mail,
Thunderbird and Outlook.com Message-IDs.

Every check reads the raw bytes the transport wrote (data/sent/new), as a mail client reads them.
"""

from __future__ import annotations

import email
import quopri
import re
from datetime import timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailbot.mail.compose import fold_msg_ids, wire_msg_ids
from mailbot.references import bounded, merged
from mailbot.store import Store
from mailbot.store.schema import migrations
from tests.helpers import WARSAW_NOON, Mailbot, body_of

# Real shapes. Exchange Online (Microsoft 365, and Outlook.com today): server name, hex,
# upper case, 78–90 characters, longer than a header line leaves room for.
EXCHANGE_ID = "<DB9P190MB12345A6B7C8D9E0F1A2B3C4D5E6F7@DB9P190MB1234.EURP190.PROD.OUTLOOK.COM>"
OUTLOOK_COM_ID = (
    "<PAXP189MB1234ABCDEF0123456789ABCDEF0123456789@PAXP189MB1234.EURP189.PROD.OUTLOOK.COM>"
)
GMAIL_ID = "<CAJ+x8fE1pZk3-Qv_Yt9Lm2Nw0Rb7=Hs4Dx6Ug5Ea8Ki1Jc=Qx7w@mail.gmail.com>"
APPLE_ID = "<5F3A1C2B-8D4E-4F6A-9B7C-1E2D3F4A5B6C@4dustry.pl>"
THUNDERBIRD_ID = "<7b2f0c1e-3a4d-4e5f-8a9b-0c1d2e3f4a5b@klient.pl>"

ANNA = "Anna Kowalska <anna@4dustry.com>"
TOMASZ = "Tomasz Nowak <tomasz@4dustry.com>"
ANNA_GMAIL_IDS = (
    "<CAKd9s+0aNnA1kOwAlSkA_2Qp-Vx7=Zr4Tb8Yh3Mj6Lc5Nw@mail.gmail.com>",
    "<CAKd9s+0aNnA2kOwAlSkA_9Xy-Qw1=Pe3Rt5Uo7Ia2Sd4Fg@mail.gmail.com>",
    "<CAKd9s+0aNnA3kOwAlSkA_8Hj-Kl6=Zx0Cv2Bn4Mq1We3Rt@mail.gmail.com>",
)
TOMASZ_OUTLOOK_ID = (
    "<VI1P190MB0456F1E2D3C4B5A69788796A5B4C3D2E1F0A@VI1P190MB0456.EURP190.PROD.OUTLOOK.COM>"
)

MSGID = re.compile(r"<[^<>\s]+>")
MSGID_FIELDS = ("message-id", "in-reply-to", "references")


# -- mail as the clients write it -----------------------------------------------------------


def _refs_line(name: str, ids: list[str], style: str) -> str:
    """References as each client folds it: Outlook and Thunderbird one id a line, Gmail and
    Apple Mail space-separated, folded only when too long."""
    if style in ("outlook", "thunderbird"):
        return f"{name}: " + "\r\n ".join(ids)
    return f"{name}: " + " ".join(ids)


CLIENTS = {
    # client: (Message-ID, References style, extra headers)
    "exchange-online": (
        EXCHANGE_ID,
        "outlook",
        [
            "Thread-Topic: {subject}",
            "Thread-Index: AQHbQ2xVdJ0sE5mF8EuWq3kz1c7vLA==",
            "Accept-Language: pl-PL, en-US",
            "Content-Language: pl-PL",
            "X-MS-Has-Attach:",
            "X-MS-TNEF-Correlator:",
        ],
    ),
    "outlook.com": (
        OUTLOOK_COM_ID,
        "outlook",
        ["Thread-Topic: {subject}", "Thread-Index: AQHbR7c1pNwq0X3vOk2m8yHfZtJ4Gw=="],
    ),
    "gmail": (GMAIL_ID, "gmail", []),
    "apple-mail": (
        APPLE_ID,
        "apple",
        ["X-Mailer: Apple Mail (2.3774.300.61.1.2)"],
    ),
    "thunderbird": (
        THUNDERBIRD_ID,
        "thunderbird",
        ["User-Agent: Mozilla Thunderbird", "Content-Language: pl"],
    ),
}


def client_mail(
    client: str,
    *,
    sender: str,
    subject: str,
    body: str,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    now=WARSAW_NOON,
) -> bytes:
    """Raw bytes as `client` writes them (long ids stay whole: clients never encode them)."""
    default_id, style, extra = CLIENTS[client]
    subject = subject if subject.isascii() else Header(subject, "utf-8").encode()
    lines = [
        f"From: {sender}",
        "To: Pomoc 4Dustry <pomoc@4dustry.com>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id or default_id}",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(_refs_line("References", references, style))
    lines += [line.format(subject=subject) for line in extra]
    lines += [
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "MIME-Version: 1.0",
    ]
    encoded = quopri.encodestring(body.replace("\n", "\r\n").encode("utf-8"))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + encoded + b"\r\n"


def agent_answer(
    note: EmailMessage, sender: str, text: str, message_id: str, client: str = "gmail"
) -> bytes:
    """An agent answers a notification from their own client: new text on top, quote below."""
    quoted = "\n".join("> " + line for line in body_of(note).splitlines())
    thread = [*MSGID.findall(str(note["References"] or "")), note["Message-ID"]]
    return client_mail(
        client,
        sender=sender,
        subject="Re: " + note["Subject"],
        body=f"{text}\n\nOn Mon, Nov 30, 2026 at 11:05 AM 4Dustry <pomoc@4dustry.com>"
        f" wrote:\n{quoted}\n",
        message_id=message_id,
        in_reply_to=note["Message-ID"],
        references=list(dict.fromkeys(thread)),
    )


# -- the wire ------------------------------------------------------------------------------


class Wire:
    """One sent mail as bytes: its header lines, unfolded fields, and its outbox template."""

    def __init__(self, raw: bytes, template: str) -> None:
        self.raw, self.template = raw, template
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
        self.lines = head.split("\r\n")
        self.fields: dict[str, str] = {}
        name = ""
        for line in self.lines:
            if line[:1] in (" ", "\t"):
                self.fields[name] += line  # unfolding: the CRLF goes, the space stays
            else:
                name, _, value = line.partition(":")
                name = name.lower()
                self.fields[name] = value
        self.parsed = email.message_from_bytes(raw, policy=policy.default)

    def ids(self, field: str) -> list[str]:
        return MSGID.findall(self.fields.get(field, ""))

    @property
    def message_id(self) -> str:
        [mid] = self.ids("message-id")
        return mid

    @property
    def to(self) -> str:
        return str(self.parsed["To"])


def sent(bot: Mailbot) -> list[Wire]:
    """Every mail the Maildir transport wrote, oldest first, as bytes."""
    templates = {row["message_id"]: row["template"] for row in bot.ctx.store.rows("outbox")}
    files = sorted(
        (bot.cfg.outbound.path / "new").iterdir(), key=lambda p: int(p.name.split(".")[0])
    )
    out = []
    for path in files:
        raw = path.read_bytes()
        [mid] = MSGID.findall(re.search(rb"(?im)^message-id:(.*)$", raw).group(1).decode())
        out.append(Wire(raw, templates[mid]))
    return out


def assert_wire_rules(mail: Wire) -> None:
    """RFC 5322 line lengths, one msg-id in In-Reply-To, no encoded-word where ids belong."""
    for line in mail.raw.split(b"\r\n"):
        assert len(line) <= 998, (mail.template, line[:80])
    for line in mail.lines:
        alone = MSGID.fullmatch(line.strip())
        if len(line) > 78:
            # Only a continuation line holding one id too long to share a line is longer.
            assert line.startswith(" ") and alone and len(line.strip()) > 77, (mail.template, line)
    for field in MSGID_FIELDS:
        value = mail.fields.get(field)
        if value is None:
            continue
        assert "=?" not in value, (mail.template, field, value)
        assert MSGID.sub("", value).strip() == "", (mail.template, field, value)  # ids only
    if "in-reply-to" in mail.fields:
        assert len(mail.ids("in-reply-to")) == 1, mail.fields["in-reply-to"]
    assert len(mail.ids("message-id")) == 1


def one_conversation(mailbox: list[tuple[str, list[str]]]) -> bool:
    """Whether a client that links mail by exact Message-ID, In-Reply-To and References (as
    Thunderbird, Apple Mail and Outlook do) shows these (Message-ID, referenced ids) as one."""
    parent: dict[str, str] = {}

    def root(mid: str) -> str:
        while parent.get(mid, mid) != mid:
            mid = parent[mid]
        return mid

    for mid, referenced in mailbox:
        for other in referenced:
            parent[root(other)] = root(mid)
    return len({root(mid) for mid, _ in mailbox}) == 1


def linked(mail: Wire) -> tuple[str, list[str]]:
    return mail.message_id, mail.ids("in-reply-to") + mail.ids("references")


# -- folding ------------------------------------------------------------------------------


def test_ids_are_folded_between_ids_never_encoded() -> None:
    assert len(EXCHANGE_ID) == 79  # as Exchange Online writes them
    assert fold_msg_ids("In-Reply-To", [EXCHANGE_ID]) == f"In-Reply-To:\r\n {EXCHANGE_ID}\r\n"
    short = [f"<{n}.1732961234@klient.pl>" for n in range(12)]
    folded = fold_msg_ids("References", [*short, EXCHANGE_ID, GMAIL_ID, APPLE_ID])
    lines = folded.removesuffix("\r\n").split("\r\n")
    assert all(len(line) <= 78 for line in lines if line.strip() != EXCHANGE_ID)
    assert f"\r\n {EXCHANGE_ID}\r\n" in folded  # alone on its line: 80 characters
    assert MSGID.findall(folded) == [*short, EXCHANGE_ID, GMAIL_ID, APPLE_ID]
    assert fold_msg_ids("References", [THUNDERBIRD_ID]) == f"References: {THUNDERBIRD_ID}\r\n"


def test_only_ids_reach_the_wire() -> None:
    hostile = f"{GMAIL_ID}\r\nBcc: all@example.com <x@y>\x00 {APPLE_ID} <a b@c> {GMAIL_ID}"
    assert wire_msg_ids(hostile) == [GMAIL_ID, "<x@y>", APPLE_ID]
    assert "Bcc" not in fold_msg_ids("References", wire_msg_ids(hostile))


def test_references_keep_the_root_and_the_latest() -> None:
    ids = [f"<{n}@klient.pl>" for n in range(30)]
    assert bounded(ids) == (ids[0], *ids[-19:])
    assert bounded(ids[:20]) == tuple(ids[:20])
    # An id stored lower-cased by an older version gives way to the case the customer wrote.
    assert merged([EXCHANGE_ID.lower(), GMAIL_ID, EXCHANGE_ID]) == [EXCHANGE_ID, GMAIL_ID]


# -- every kind of mail, for every client's ids --------------------------------------------

EWA = "Ewa Nowak <ewa@przyklad.pl>"  # a customer with an account manager (@przyklad.pl)


@pytest.mark.parametrize("client", list(CLIENTS))
def test_every_outgoing_mail_carries_the_ids_exactly_and_folds_them(
    tmp_path: Path, client: str
) -> None:
    # abuse_warn = 1: the first urgent request already brings the warning, so it is on the wire.
    bot = Mailbot(tmp_path, settings={"urgent.abuse_warn": "1"})
    try:
        customer_id = CLIENTS[client][0]
        subject = "Pilne: dostawa komponentów nie dotarła"
        bot.deliver(
            client_mail(
                client, sender=EWA, subject=subject, body="Dzień dobry, gdzie jest dostawa?"
            )
        )
        [ack] = [m for m in sent(bot) if m.template == "ack"]
        followup_id = customer_id.replace("@", "2@", 1)
        bot.deliver(
            client_mail(
                client,
                sender=EWA,
                subject="Re: " + str(ack.parsed["Subject"]),
                body="Numer zamówienia: 4711.",
                message_id=followup_id,
                in_reply_to=ack.message_id,
                references=[customer_id, ack.message_id],
                now=WARSAW_NOON + timedelta(minutes=20),
            ),
            now=WARSAW_NOON + timedelta(minutes=20),
        )
        [followup_note] = [m for m in sent(bot) if m.template == "agent_followup"]
        bot.deliver(  # a typo in a command: the agent is told, nothing goes out
            agent_answer(followup_note.parsed, ANNA, "#zamknji\n\nGotowe.", ANNA_GMAIL_IDS[0]),
            now=WARSAW_NOON + timedelta(minutes=30),
        )
        bot.deliver(  # Tomasz writes from Outlook without a token: unverified
            client_mail(
                "exchange-online",
                sender=TOMASZ,
                subject="RE: " + subject,
                body="Sprawdzę to.",
                message_id=TOMASZ_OUTLOOK_ID,
                in_reply_to=customer_id,
                references=[customer_id],
            ),
            now=WARSAW_NOON + timedelta(minutes=40),
        )
        due = WARSAW_NOON + timedelta(days=2)  # Wednesday 11:00 in Warsaw
        bot.run(now=due - timedelta(hours=17, minutes=30))  # Tuesday 17:30: both warnings
        bot.run(now=due + timedelta(minutes=1))  # the breach
        [new_note] = [m for m in sent(bot) if m.template == "agent_new" and "anna@" in m.to]
        bot.deliver(
            agent_answer(new_note.parsed, ANNA, "Dostawa wyjdzie jutro.", ANNA_GMAIL_IDS[1]),
            now=due + timedelta(hours=1),
        )

        wires = sent(bot)
        kinds = {m.template for m in wires}
        assert kinds >= {
            "ack",
            "abuse_warning",
            "queued",
            "reply",
            "agent_new",
            "agent_followup",
            "agent_error",
            "agent_unverified",
            "sla_warning",
            "sla_breach",
            "manager_urgent",
        }, kinds
        for mail in wires:
            assert_wire_rules(mail)

        to_customer = [m for m in wires if "ewa@przyklad.pl" in m.to]
        assert {m.template for m in to_customer} == {"ack", "abuse_warning", "queued", "reply"}
        customer_sent = [(customer_id, []), (followup_id, [ack.message_id, customer_id])]
        known = {mid for mid, _ in customer_sent} | {m.message_id for m in to_customer}
        internal = (*ANNA_GMAIL_IDS, TOMASZ_OUTLOOK_ID)
        staff_ids = {m.message_id for m in wires} - {m.message_id for m in to_customer}
        for mail in to_customer:
            assert customer_id.encode() in mail.raw, mail.template  # byte-exact, case kept
            referenced = mail.ids("in-reply-to") + mail.ids("references")
            assert set(referenced) <= known, (mail.template, set(referenced) - known)
            assert not set(referenced) & staff_ids
            for mid in internal:
                assert mid.lower().encode() not in mail.raw.lower(), (mail.template, mid)
            assert mail.ids("references")[0] == customer_id  # the thread's root first
            assert mail.ids("references")[-1] == mail.ids("in-reply-to")[0]  # answered last
        by_kind = {m.template: m for m in to_customer}
        assert by_kind["ack"].ids("in-reply-to") == [customer_id]
        assert by_kind["queued"].ids("in-reply-to") == [followup_id]
        assert by_kind["queued"].ids("references") == [
            customer_id,
            ack.message_id,
            by_kind["abuse_warning"].message_id,  # sent with the ack: the customer has it
            followup_id,
        ]
        assert by_kind["reply"].ids("in-reply-to") == [followup_id]
        assert one_conversation([*customer_sent, *map(linked, to_customer)])

        # Anna's client: her notifications and her own answers make one conversation.
        to_anna = [m for m in wires if "anna@" in m.to and m.template != "agent_unverified"]
        assert {m.template for m in to_anna} == {
            "agent_new",
            "agent_followup",
            "agent_error",
            "sla_warning",
        }
        anna_notes = {m.template: m for m in to_anna}
        assert anna_notes["agent_new"].ids("in-reply-to") == [customer_id]
        assert anna_notes["agent_followup"].ids("in-reply-to") == [followup_id]
        assert anna_notes["agent_followup"].ids("references") == [
            customer_id,
            anna_notes["agent_new"].message_id,
            followup_id,
        ]
        assert anna_notes["agent_error"].ids("in-reply-to") == [ANNA_GMAIL_IDS[0]]
        anna_sent = [
            (ANNA_GMAIL_IDS[0], [followup_note.message_id]),
            (ANNA_GMAIL_IDS[1], [new_note.message_id]),
        ]
        assert one_conversation([*anna_sent, *map(linked, to_anna)])
    finally:
        bot.close()


# -- a whole conversation -------------------------------------------------------------------


def test_conversation_from_exchange_to_gmail_and_back_stays_one_thread(bot) -> None:
    """Customer on Microsoft 365 → ack → Anna answers from Gmail → the customer answers from
    Outlook with the References chain → Anna answers again."""
    jan = "Jan Kowalski <jan@klient.pl>"
    subject = "Dostawa komponentów"
    bot.deliver(client_mail("exchange-online", sender=jan, subject=subject, body="Gdzie dostawa?"))
    [ack] = [m for m in sent(bot) if m.template == "ack"]
    [note] = [m for m in sent(bot) if m.template == "agent_new"]
    bot.deliver(
        agent_answer(note.parsed, ANNA, "Dostawa wyjdzie jutro.", ANNA_GMAIL_IDS[0]),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    [first_answer] = [m for m in sent(bot) if m.template == "reply"]
    assert first_answer.ids("in-reply-to") == [EXCHANGE_ID]
    assert first_answer.ids("references") == [EXCHANGE_ID]
    # The customer answers our answer from Outlook: upper-case id, the chain in References.
    customer_reply_id = EXCHANGE_ID.replace("F7@", "B9@")
    bot.deliver(
        client_mail(
            "exchange-online",
            sender=jan,
            subject="RE: " + str(first_answer.parsed["Subject"]),
            body="Dziękuję, a kiedy dotrze?",
            message_id=customer_reply_id,
            in_reply_to=first_answer.message_id,
            references=[EXCHANGE_ID, first_answer.message_id],
            now=WARSAW_NOON + timedelta(hours=2),
        ),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    assert len(bot.tickets()) == 1  # the same ticket
    assert [r["message_id"] for r in bot.ctx.store.rows("messages", kind="customer")] == [
        EXCHANGE_ID,
        customer_reply_id,
    ]  # stored as received
    [followup] = [m for m in sent(bot) if m.template == "agent_followup"]
    bot.deliver(
        agent_answer(followup.parsed, ANNA, "Dotrze w czwartek.", ANNA_GMAIL_IDS[1]),
        now=WARSAW_NOON + timedelta(hours=3),
    )
    answers = [m for m in sent(bot) if m.template == "reply"]
    assert len(answers) == 2
    second = answers[1]
    assert second.ids("in-reply-to") == [customer_reply_id]
    assert second.ids("references") == [
        EXCHANGE_ID,
        ack.message_id,
        first_answer.message_id,
        customer_reply_id,
    ]
    for mail in (ack, *answers):
        assert_wire_rules(mail)
        assert EXCHANGE_ID.encode() in mail.raw
        for mid in ANNA_GMAIL_IDS:
            assert mid.encode() not in mail.raw
    # The customer's mailbox: their two messages and our three; one conversation.
    mailbox = [
        (EXCHANGE_ID, []),
        (customer_reply_id, [EXCHANGE_ID, first_answer.message_id]),
        *map(linked, (ack, *answers)),
    ]
    assert one_conversation(mailbox)
    known = {mid for mid, _ in mailbox}
    assert all(set(refs) <= known for _, refs in mailbox)


def test_an_mta_that_upper_cases_our_ids_changes_nothing(bot) -> None:
    """Tokens and stored ids match whatever case a relay gave them."""
    bot.deliver(
        client_mail("thunderbird", sender="Jan <jan@klient.pl>", subject="Dostawa", body="Gdzie?")
    )
    [note] = [m for m in sent(bot) if m.template == "agent_new"]
    upper = note.message_id.upper()
    raw = agent_answer(note.parsed, ANNA, "Wysłana wczoraj.", ANNA_GMAIL_IDS[0])
    raw = raw.replace(note.message_id.encode(), upper.encode())
    bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=1))  # authenticated by its token
    [answer] = [m for m in sent(bot) if m.template == "reply"]
    assert "Wysłana wczoraj." in body_of(answer.parsed)
    [ack] = [m for m in sent(bot) if m.template == "ack"]
    bot.deliver(
        client_mail(
            "thunderbird",
            sender="Jan <jan@klient.pl>",
            subject="Re: Dostawa",
            body="Dziękuję.",
            message_id=THUNDERBIRD_ID.replace("@", "-2@"),
            in_reply_to=ack.message_id.upper(),
        ),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    assert len(bot.tickets()) == 1


# -- databases from older versions ----------------------------------------------------------


def test_a_lower_cased_row_from_an_older_version_still_threads_and_stays_a_duplicate(
    bot,
) -> None:
    jan = "Jan Kowalski <jan@klient.pl>"
    first = client_mail("exchange-online", sender=jan, subject="Faktura 2026/11", body="Proszę.")
    bot.deliver(first)
    # Earlier versions stored ids lower-cased and kept no references.
    [row] = bot.ctx.store.rows("messages", kind="customer")
    bot.ctx.store.update("messages", row["id"], {"message_id": EXCHANGE_ID.lower(), "refs": None})
    # The same message again (an IMAP re-poll after the upgrade): a duplicate, kept once.
    bot.deliver(b"Received: from mx.klient.pl\r\n" + first, now=WARSAW_NOON + timedelta(minutes=5))
    assert bot.ctx.store.count("messages", kind="customer") == 1
    # The customer writes again from their Sent folder: the original case in References only.
    follow_id = EXCHANGE_ID.replace("F7@", "C0@")
    bot.deliver(
        client_mail(
            "exchange-online",
            sender=jan,
            subject="RE: Faktura 2026/11",
            body="Czy jest już odpowiedź?",
            message_id=follow_id,
            in_reply_to=EXCHANGE_ID,
            references=[EXCHANGE_ID],
            now=WARSAW_NOON + timedelta(hours=1),
        ),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    assert len(bot.tickets()) == 1  # threaded onto the ticket by the lower-cased row
    [queued] = [m for m in sent(bot) if m.template == "queued"]
    assert_wire_rules(queued)
    [ack] = [m for m in sent(bot) if m.template == "ack"]
    # The original case, as the customer's client knows it, not the stored lower case.
    assert queued.ids("references") == [EXCHANGE_ID, ack.message_id, follow_id]
    assert queued.ids("in-reply-to") == [follow_id]


def test_message_id_lookups_are_index_searches(tmp_path: Path) -> None:
    """Ignoring case costs no scan: every lookup searches an index in its collation, on a
    database migrated from the version before (m005)."""
    path = tmp_path / "old.sqlite3"
    old = Store(path, migrate=False)
    migrations.apply(old.db, stop_before="m006_message_ids_as_received")
    old.close()
    store = Store(path)
    try:
        plans = store.messages.lookup_plans()
        assert set(plans) >= {"has", "ticket_by_message_ids", "ticket_by_message_ids (outbox)"}
        for name, steps in plans.items():
            searches = [s for s in steps if s.startswith(("SEARCH", "SCAN"))]
            assert searches and all(s.startswith("SEARCH") and "INDEX" in s for s in searches), (
                name,
                steps,
            )
        assert any("messages_message_id" in s for s in plans["has"])
        assert any("messages_message_id" in s for s in plans["ticket_by_message_ids"])
    finally:
        store.close()


def test_a_long_thread_keeps_its_root_and_latest_twenty(bot) -> None:
    jan = "Jan Kowalski <jan@klient.pl>"
    bot.deliver(client_mail("gmail", sender=jan, subject="Dostawa", body="Gdzie dostawa?"))
    customer_ids = [GMAIL_ID]
    now = WARSAW_NOON
    for n in range(1, 12):
        now += timedelta(minutes=30)
        note = [m for m in sent(bot) if m.template.startswith("agent_")][-1]
        bot.deliver(
            agent_answer(note.parsed, ANNA, f"Odpowiedź {n}.", f"<CAKd9s+{n}@x.com>"), now=now
        )
        answer = [m for m in sent(bot) if m.template == "reply"][-1]
        now += timedelta(minutes=30)
        customer_ids.append(GMAIL_ID.replace("@", f".{n}@"))
        bot.deliver(
            client_mail(
                "gmail",
                sender=jan,
                subject="Re: " + str(answer.parsed["Subject"]),
                body=f"Pytanie {n}.",
                message_id=customer_ids[-1],
                in_reply_to=answer.message_id,
                references=[*answer.ids("references"), answer.message_id],
                now=now,
            ),
            now=now,
        )
    assert len(bot.tickets()) == 1
    note = [m for m in sent(bot) if m.template == "agent_followup"][-1]
    bot.deliver(agent_answer(note.parsed, ANNA, "Ostatnia.", "<CAKd9s+last@x.com>"), now=now)
    last = [m for m in sent(bot) if m.template == "reply"][-1]
    assert_wire_rules(last)
    refs = last.ids("references")
    assert len(refs) == 20 and refs[0] == GMAIL_ID and refs[-1] == customer_ids[-1]
    ours = {m.message_id for m in sent(bot) if "jan@" in m.to}
    assert set(refs) <= ours | set(customer_ids)  # nothing the customer has not seen


def test_a_fresh_mail_with_the_ticket_tag_joins_the_conversation(bot) -> None:
    jan = "Jan Kowalski <jan@klient.pl>"
    bot.deliver(client_mail("apple-mail", sender=jan, subject="Faktura", body="Proszę o fakturę."))
    [ack] = [m for m in sent(bot) if m.template == "ack"]
    fresh_id = APPLE_ID.replace("1E2D", "9F8E")
    bot.deliver(  # a new mail, no In-Reply-To: only the tag in the subject ties it
        client_mail(
            "apple-mail",
            sender=jan,
            subject=str(ack.parsed["Subject"]) + " – uzupełnienie",
            body="Numer NIP: 123-456-78-90.",
            message_id=fresh_id,
        ),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    [queued] = [m for m in sent(bot) if m.template == "queued"]
    assert queued.ids("in-reply-to") == [fresh_id]
    assert queued.ids("references") == [APPLE_ID, ack.message_id, fresh_id]
    assert one_conversation([(APPLE_ID, []), (fresh_id, []), linked(ack), linked(queued)])


def test_ids_the_customer_never_saw_are_dropped_from_their_chain(bot) -> None:
    """Answers of older versions carried the agent's own Message-ID; a customer's reply to one
    carries it back. Our next answer leaves it out, and any staff notification's id too."""
    jan = "Jan Kowalski <jan@klient.pl>"
    bot.deliver(client_mail("thunderbird", sender=jan, subject="Dostawa", body="Gdzie?"))
    [note] = [m for m in sent(bot) if m.template == "agent_new"]
    bot.deliver(
        agent_answer(note.parsed, ANNA, "Jutro.", ANNA_GMAIL_IDS[0]),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    [ack] = [m for m in sent(bot) if m.template == "ack"]
    [answer] = [m for m in sent(bot) if m.template == "reply"]
    reply_id = THUNDERBIRD_ID.replace("@", "-2@")
    leaked = [THUNDERBIRD_ID, ANNA_GMAIL_IDS[0], note.message_id, answer.message_id]
    bot.deliver(
        client_mail(
            "thunderbird",
            sender=jan,
            subject="Re: " + str(answer.parsed["Subject"]),
            body="A o której?",
            message_id=reply_id,
            in_reply_to=answer.message_id,
            references=leaked,
        ),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    [followup] = [m for m in sent(bot) if m.template == "agent_followup"]
    bot.deliver(
        agent_answer(followup.parsed, ANNA, "Około 10:00.", ANNA_GMAIL_IDS[1]),
        now=WARSAW_NOON + timedelta(hours=3),
    )
    second = [m for m in sent(bot) if m.template == "reply"][-1]
    assert second.ids("references") == [
        THUNDERBIRD_ID,
        ack.message_id,
        answer.message_id,
        reply_id,
    ]
