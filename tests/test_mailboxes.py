"""Several support addresses: each customer is answered from the address they wrote to (#13)."""

from __future__ import annotations

import json
import quopri
import re
import smtplib
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot import loops
from mailbot.cli import main
from mailbot.config import ConfigError
from mailbot.intake import accept
from tests.daemon_helpers import InProcessDaemon, daemon_settings, wait_until
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail, write_config
from tests.test_agents import gmail_reply, notification, outlook_reply

MAILBOXES = """
[[mailboxes]]
address = "pomoc@4dustry.com"
default_language = "pl"

[[mailboxes]]
address = "support@4dustry.com"
name = "4Dustry Support"
default_language = "en"
topic = "bugs"
folder = "Support"

[[mailboxes]]
address = "help@4dustry.eu"
name = "4Dustry Europe"
default_language = "en"
"""


@pytest.fixture
def multi(tmp_path: Path):
    (tmp_path / "multi").mkdir()
    instance = Mailbot(tmp_path / "multi", MAILBOXES)
    yield instance
    instance.close()


def gmail_mail(to: str, subject: str, text: str, mid: str, headers: str = "") -> bytes:
    """A new message as Gmail's web client writes it: multipart/alternative, CA… Message-ID."""
    html = "".join(f"<div>{line or '<br>'}</div>" for line in text.splitlines())
    return (
        "MIME-Version: 1.0\r\n"
        f"{headers}"
        "Date: Mon, 30 Nov 2026 11:00:00 +0100\r\n"
        f"Message-ID: <{mid}@mail.gmail.com>\r\n"
        f"Subject: {subject}\r\n"
        "From: John Smith <john.smith@gmail.com>\r\n"
        f"To: {to}\r\n"
        'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"\r\n'
        "\r\n"
        "--000000000000a1b2c3\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
        f"{text}\r\n"
        "\r\n"
        "--000000000000a1b2c3\r\n"
        'Content-Type: text/html; charset="UTF-8"\r\n'
        "\r\n"
        f'<div dir="ltr">{html}</div>\r\n'
        "\r\n"
        "--000000000000a1b2c3--\r\n"
    ).encode()


def outlook_mail(to: str, cc: str, subject: str, text: str, headers: str = "") -> bytes:
    """A new message as Outlook for Microsoft 365 sends it (quoted-printable, Thread-Index)."""
    head = (
        f"{headers}"
        "From: Jan Kowalski <jan.kowalski@firma.pl>\r\n"
        f"To: {to}\r\n"
        f"CC: {cc}\r\n"
        "Subject: =?iso-8859-2?Q?Faktura_koryguj=B1ca?=\r\n"
        "Thread-Topic: =?iso-8859-2?Q?Faktura_koryguj=B1ca?=\r\n"
        "Thread-Index: AdtDvR0xk3FqB2o8TgyqXcR0b2cJZw==\r\n"
        "Date: Mon, 30 Nov 2026 10:58:12 +0000\r\n"
        "Message-ID:\r\n"
        " <AM9PR03MB7153C0D6F1E2B8A4D1C7A9E5B64F2@AM9PR03MB7153.eurprd03.prod.outlook.com>\r\n"
        "Accept-Language: pl-PL, en-US\r\n"
        "Content-Language: pl-PL\r\n"
        "X-MS-Has-Attach:\r\n"
        'Content-Type: text/plain; charset="iso-8859-2"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
    ).encode()
    assert subject == "Faktura korygująca"  # as encoded above
    return head + quopri.encodestring(text.encode("iso-8859-2")).replace(b"\n", b"\r\n")


def sent_raw(bot: Mailbot) -> list[bytes]:
    """The bytes of every mail written to the outgoing Maildir, oldest first."""
    new = bot.cfg.outbound.path / "new"
    files = sorted(new.iterdir(), key=lambda p: int(p.name.split(".")[0])) if new.is_dir() else []
    return [p.read_bytes() for p in files]


def raw_to(bot: Mailbot, address: str, index: int = -1) -> bytes:
    found = [
        raw
        for raw in sent_raw(bot)
        if BytesParser(policy=policy.default).parsebytes(raw)["To"] == address
    ]
    assert found, f"nothing sent to {address}"
    return found[index]


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def deliver_smtp(bot: Mailbot, raw: bytes, rcpts: list[str]) -> int:
    """As the SMTP listener stores it: with its envelope recipients."""
    inbound_id, _ = accept(
        bot.ctx.store, raw, source="smtp", now=WARSAW_NOON, envelope_to=rcpts,
        envelope_from="john.smith@gmail.com",
    )  # fmt: skip
    bot.run(WARSAW_NOON)
    return inbound_id


# -- answered from the address written to ------------------------------------------------------


def test_ack_and_queue_notice_go_out_from_the_address_the_customer_wrote_to(multi) -> None:
    raw = gmail_mail(
        "4Dustry Support <support@4dustry.com>",
        "Cannot log in",
        "Hello,\nI cannot log in to my account since this morning.\nRegards,\nJohn",
        "CAHk7x9pQ2mV0tYw1=abc",
    )
    deliver_smtp(multi, raw, ["support@4dustry.com"])
    [ticket] = multi.tickets()
    assert ticket["mailbox"] == "support@4dustry.com" and ticket["language"] == "en"
    ack = raw_to(multi, "john.smith@gmail.com")
    head = header_block(ack)
    assert b"\r\nFrom: 4Dustry Support <support@4dustry.com>\r\n" in b"\r\n" + head
    assert b"\r\nX-Loop: support@4dustry.com\r\n" in head
    assert re.search(rb"\r\nMessage-ID: <mb\.1\.ack\.[^>]+@4dustry\.com>\r\n", head)
    assert b"support@4dustry.com" in ack.split(b"\r\n\r\n", 1)[1]  # the signature's address
    # The customer writes again before anyone answers: the queue notice, from the same address.
    ack_id = BytesParser(policy=policy.default).parsebytes(ack)["Message-ID"]
    follow = gmail_mail(
        "support@4dustry.com",
        "Re: Cannot log in",
        "Any news? It still fails.",
        "CAHk7x9pQ3z",
        headers=f"In-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\n",
    )
    deliver_smtp(multi, follow, ["support@4dustry.com"])
    queued = raw_to(multi, "john.smith@gmail.com")
    assert queued != ack
    assert b"\r\nFrom: 4Dustry Support <support@4dustry.com>\r\n" in b"\r\n" + header_block(queued)
    [record] = multi.ctx.store.rows("messages", kind="system", direction="out", ticket_id=1)[:1]
    assert (record["from_addr"], record["from_name"]) == ("support@4dustry.com", "4Dustry Support")


def apple_mail_reply(to: str, subject: str, text: str, parent: str) -> bytes:
    """A reply as Apple Mail writes it: quoted-printable, Message-Id spelling, quote below."""
    return (
        "From: John Smith <john.smith@gmail.com>\r\n"
        "Content-Type: text/plain;\r\n\tcharset=us-ascii\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 30 Nov 2026 12:10:03 +0100\r\n"
        f"In-Reply-To: {parent}\r\n"
        f"To: {to}\r\n"
        f"References: {parent}\r\n"
        "Message-Id: <5E8C1F0A-3B7D-4C2E-9F61-2A4B8D0E7C13@gmail.com>\r\n"
        "X-Mailer: Apple Mail (2.3774.600.62)\r\n"
        "\r\n"
        f"{text}\r\n\r\n> On 30 Nov 2026, at 11:00, 4Dustry Support wrote:\r\n> \r\n> Hello\r\n"
    ).encode()


def test_a_reply_to_the_other_address_stays_with_the_tickets_mailbox(multi) -> None:
    raw = gmail_mail("support@4dustry.com", "Invoice", "Hello, I need a copy of invoice 7.", "C3")
    deliver_smtp(multi, raw, ["support@4dustry.com"])
    ack = BytesParser(policy=policy.default).parsebytes(raw_to(multi, "john.smith@gmail.com"))
    # Apple Mail, answering our ack but addressed to the Polish address.
    reply = apple_mail_reply("pomoc@4dustry.com", "Re: " + ack["Subject"], "Any news?",
                             ack["Message-ID"])  # fmt: skip
    deliver_smtp(multi, reply, ["pomoc@4dustry.com"])
    [ticket] = multi.tickets()
    assert ticket["mailbox"] == "support@4dustry.com"
    [row] = multi.ctx.store.rows("outbox", template="queued")
    assert (row["to_addr"], row["from_addr"]) == ("john.smith@gmail.com", "support@4dustry.com")
    queued = raw_to(multi, "john.smith@gmail.com")
    assert b"\r\nFrom: 4Dustry Support <support@4dustry.com>\r\n" in b"\r\n" + header_block(
        queued
    )


def test_agent_answer_is_relayed_from_the_tickets_mailbox_of_another_domain(multi) -> None:
    raw = gmail_mail(
        "help@4dustry.eu",
        "Delivery to Hamburg",
        "Hello, where is my delivery to Hamburg? Order 4411.",
        "CAJd2mK8",
    )
    deliver_smtp(multi, raw, ["help@4dustry.eu"])
    [ticket] = multi.tickets()
    assert ticket["mailbox"] == "help@4dustry.eu"
    ack = header_block(raw_to(multi, "john.smith@gmail.com"))
    assert b"\r\nFrom: 4Dustry Europe <help@4dustry.eu>\r\n" in b"\r\n" + ack
    assert re.search(rb"\r\nMessage-ID: <mb\.1\.ack\.[^>]+@4dustry\.eu>\r\n", ack)
    note = notification(multi)  # topic logistics → Anna; signed in the mailbox's domain
    assert note["Message-ID"].endswith("@4dustry.eu>")
    assert "Skrzynka: help@4dustry.eu" in body_of(note)
    multi.deliver(outlook_reply(note, "Anna Kowalska <anna@4dustry.com>", "It left today.", False))
    reply = raw_to(multi, "john.smith@gmail.com")
    head = header_block(reply)
    assert b"\r\nFrom: Anna | 4Dustry Europe <help@4dustry.eu>\r\n" in b"\r\n" + head
    assert b"Auto-Submitted" not in head and b"It left today." in reply
    assert re.search(rb"\r\nMessage-ID: <mb\.1\.reply\.[^>]+@4dustry\.eu>\r\n", head)
    assert multi.tickets()[0]["first_response_at"] is not None
    # The customer answers our reply: its token (in the other domain) finds the ticket.
    parsed = BytesParser(policy=policy.default).parsebytes(reply)
    answer = gmail_mail(
        "help@4dustry.eu",
        "Re: " + parsed["Subject"],
        "Thank you, but the tracking link does not open.",
        "CAJd2mK9",
        headers=f"In-Reply-To: {parsed['Message-ID']}\r\nReferences: {parsed['Message-ID']}\r\n",
    )
    deliver_smtp(multi, answer, ["help@4dustry.eu"])
    assert len(multi.tickets()) == 1
    [event] = multi.ctx.store.rows("events", kind="follow-up")
    assert "reply token" in event["detail"]


def test_language_and_topic_fall_back_to_the_mailbox(multi) -> None:
    for n, to in enumerate(("support@4dustry.com", "pomoc@4dustry.com")):
        # No words to tell the language by, no topic keyword.
        deliver_smtp(multi, gmail_mail(to, "FV-2026/11/77", "FV-2026/11/77", f"CAx{n}"), [to])
    deliver_smtp(
        multi,
        gmail_mail("support@4dustry.com", "Shipment", "Where is my shipment?", "CAx9"),
        ["support@4dustry.com"],
    )
    support, pomoc, keyword = multi.tickets()
    assert (support["language"], support["topic"]) == ("en", "bugs")
    assert (pomoc["language"], pomoc["topic"]) == ("pl", None)
    assert keyword["topic"] == "logistics"  # a keyword still wins over the mailbox's topic
    [routed] = multi.ctx.store.rows("events", kind="topic", ticket_id=1)
    assert "support@4dustry.com's topic" in routed["detail"]


def test_one_mail_to_both_addresses_makes_one_ticket(multi) -> None:
    text = "Dzień dobry,\r\nproszę o fakturę korygującą do zamówienia 5521.\r\nJan Kowalski"
    # One SMTP transaction for both recipients: To decides.
    raw = outlook_mail(
        "Pomoc 4Dustry <pomoc@4dustry.com>", "support@4dustry.com", "Faktura korygująca", text
    )
    deliver_smtp(multi, raw, ["support@4dustry.com", "pomoc@4dustry.com"])
    # The same mail again, as each address's delivery adds its own Delivered-To.
    for rcpt in ("pomoc@4dustry.com", "support@4dustry.com"):
        deliver_smtp(multi, outlook_mail(
            "Pomoc 4Dustry <pomoc@4dustry.com>", "support@4dustry.com", "Faktura korygująca",
            text, headers=f"Delivered-To: {rcpt}\r\n",
        ), [rcpt])  # fmt: skip
    [ticket] = multi.tickets()
    assert ticket["mailbox"] == "pomoc@4dustry.com" and ticket["language"] == "pl"
    assert [r["status"] for r in multi.ctx.store.rows("inbound")] == [
        "processed",
        "duplicate",
        "duplicate",
    ]
    assert [m["To"] for m in multi.outbox()].count("jan.kowalski@firma.pl") == 1
    participants = {p["address"] for p in multi.ctx.store.rows("participants", order="address")}
    assert participants == {"jan.kowalski@firma.pl"}  # neither support address is a CC


def test_every_mailbox_counts_as_ours(multi) -> None:
    # Our ack from support@ coming back into pomoc@ (a forwarding rule): a loop, not a ticket.
    looped = make_mail(sender="4Dustry Support <support@4dustry.com>", subject="[4Dustry #9] x")
    bounce_from = make_mail(sender="support+bounces@4dustry.com", subject="Delivery report")
    token_mid = multi.ctx.signer.message_id(9, "ack", "x@klient.pl", "4dustry.eu")
    our_id = make_mail(sender="robot@klient.pl", message_id=token_mid, subject="Fwd")
    for raw in (looped, bounce_from, our_id):
        inbound_id = multi.deliver(raw)
        assert multi.inbound(inbound_id)["status"] == "ignored"
    assert multi.tickets() == [] and multi.outbox() == []
    # A customer copying every address: none of them becomes a participant.
    multi.deliver(
        make_mail(
            to="pomoc@4dustry.com, help+eu@4dustry.eu",
            headers={"Cc": "Support <SUPPORT@4dustry.com>, Ewa <ewa@klient.pl>"},
        )
    )
    participants = {p["address"] for p in multi.ctx.store.rows("participants", order="address")}
    assert participants == {"jan@klient.pl", "ewa@klient.pl"}


def test_staff_see_the_mailbox_only_when_there_are_several(bot, multi) -> None:
    for instance in (bot, multi):
        instance.deliver(make_mail())
    assert "Skrzynka: pomoc@4dustry.com" in body_of(notification(multi, "tomasz@4dustry.com"))
    assert "Skrzynka" not in body_of(notification(bot, "tomasz@4dustry.com"))


# -- the single-address config is unchanged ----------------------------------------------------


def test_single_address_sends_the_same_bytes_with_or_without_a_mailboxes_entry(
    bot, tmp_path: Path
) -> None:
    (tmp_path / "listed").mkdir()
    listed = Mailbot(tmp_path / "listed", '[[mailboxes]]\naddress = "pomoc@4dustry.com"\n')
    try:
        assert len(listed.cfg.mailboxes) == 1
        mail = make_mail(message_id="<a1b2@klient.pl>")
        for instance in (bot, listed):
            instance.deliver(mail)
            note = notification(instance, "tomasz@4dustry.com")
            instance.deliver(gmail_reply(note, "Tomasz Nowak <tomasz@4dustry.com>", "Już działa."))
        old, new = sent_raw(bot), sent_raw(listed)
        assert len(old) == len(new) == 4  # the ack, a notification to each agent, the reply
        for before, after in zip(old, new, strict=True):
            unsigned = [re.sub(rb"<mb\.[^>]+>", b"<id>", r) for r in (before, after)]
            assert unsigned[0] == unsigned[1]
        ack, reply = old[0], old[-1]
        assert b"\r\nFrom: 4Dustry <pomoc@4dustry.com>\r\n" in b"\r\n" + header_block(ack)
        assert b"\r\nX-Loop: pomoc@4dustry.com\r\n" in header_block(ack)
        assert b"\r\nFrom: Tomasz | 4Dustry <pomoc@4dustry.com>\r\n" in b"\r\n" + header_block(
            reply
        )
    finally:
        listed.close()


# -- listing and report -------------------------------------------------------------------------


def test_tickets_listing_and_report_cover_every_mailbox(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, MAILBOXES)
    bot = Mailbot(tmp_path, MAILBOXES)
    try:
        deliver_smtp(bot, gmail_mail("support@4dustry.com", "Login", "I cannot log in.", "C1"),
                     ["support@4dustry.com"])  # fmt: skip
        deliver_smtp(bot, make_mail(), ["pomoc@4dustry.com"])
        deliver_smtp(bot, make_mail(subject="Druga sprawa"), ["pomoc@4dustry.com"])
    finally:
        bot.close()

    def run(*args: str) -> str:
        assert main(["--config", str(config), *args]) == 0
        return capsys.readouterr().out

    tickets = json.loads(run("tickets", "--json"))
    assert [t["mailbox"] for t in tickets] == [
        "support@4dustry.com",
        "pomoc@4dustry.com",
        "pomoc@4dustry.com",
    ]
    table = run("tickets")
    assert "MAILBOX" in table.splitlines()[0] and "support@4dustry.com" in table
    report = json.loads(run("report", "--json"))
    assert {k: v["received"] for k, v in report["mailboxes"].items()} == {
        "pomoc@4dustry.com": 2,
        "support@4dustry.com": 1,
        "help@4dustry.eu": 0,
    }
    assert report["total"]["received"] == 3
    froms = {(o["to"], o["template"]): o["from"] for o in json.loads(run("outbox", "--json"))}
    assert froms[("john.smith@gmail.com", "ack")] == "support@4dustry.com"
    assert froms[("jan@klient.pl", "ack")] == "pomoc@4dustry.com"
    assert "mailbox support@4dustry.com" in run("report")


def test_single_address_report_has_no_mailbox_rows(bot, tmp_path: Path, capsys) -> None:
    bot.deliver(make_mail())
    assert main(["--config", str(tmp_path / "config.toml"), "report", "--json"]) == 0
    assert "mailboxes" not in json.loads(capsys.readouterr().out)


# -- configuration ------------------------------------------------------------------------------


def test_check_config_names_every_mailbox_problem(tmp_path: Path) -> None:
    bad = """
[[mailboxes]]
address = "support@4dustry.com"
default_language = "de"
topic = "billing"
folder = "Support"

[[mailboxes]]
address = "SUPPORT@4dustry.com"
folder = "Support"

[[mailboxes]]
address = "anna@4dustry.com"
folder = "Processed"
"""
    path = write_config(tmp_path, bad, settings={"inbound.imap.processed_folder": '"Processed"'})
    with pytest.raises(ConfigError) as info:
        config_module.load(path)
    problems = info.value.problems
    assert problems == [
        "config.toml: [mailboxes.0] default_language: de is not in [mailbot] languages",
        "config.toml: [mailboxes.0] topic: 'billing' is not a name of any [[topics]] entry",
        "config.toml: [mailboxes.1] address: support@4dustry.com is also mailboxes.0",
        "config.toml: [mailboxes.1] folder: 'Support' is also the folder of mailboxes.0"
        " (mailboxes sharing a folder leave folder out: their mail is told apart by recipient)",
        "config.toml: [mailboxes.2] address: anna@4dustry.com is an agent's address",
        "config.toml: [mailboxes.2] folder: 'Processed' is [inbound.imap] processed_folder:"
        " mail moved there would be read again",
    ]


def test_mailbot_address_is_the_default_mailbox_listed_or_not(tmp_path: Path) -> None:
    only_other = '[[mailboxes]]\naddress = "support@4dustry.com"\ntopic = "Błędy"\n'
    cfg = config_module.load(write_config(tmp_path, only_other))
    first, second = cfg.mailboxes
    assert (first.address, first.name, first.default_language, first.folder) == (
        "pomoc@4dustry.com", "4Dustry", "pl", "INBOX",
    )  # fmt: skip
    assert (second.name, second.topic, second.folder) == ("4Dustry", "bugs", "INBOX")
    assert cfg.mailbox_receiving("Support+Faktury@4dustry.com") is second
    assert cfg.mailbox_receiving("kasia@4dustry.com") is None
    assert cfg.mailbox("gone@4dustry.com") is first  # a mailbox since removed


def test_envelope_sender_is_the_mailbox_unless_outbound_fixes_it(tmp_path: Path) -> None:
    (tmp_path / "own").mkdir()
    own = config_module.load(write_config(tmp_path / "own", MAILBOXES))
    assert loops.envelope_from(own, None, "help@4dustry.eu") == "help@4dustry.eu"
    assert loops.envelope_from(own, "auto-replied", "help@4dustry.eu") == "help+bounces@4dustry.eu"
    fixed = config_module.load(
        write_config(
            tmp_path,
            MAILBOXES,
            settings={
                "outbound.envelope_from": '"relay@4dustry.com"',
                "outbound.auto_envelope_from": '"<>"',
            },
        )
    )
    assert loops.envelope_from(fixed, None, "help@4dustry.eu") == "relay@4dustry.com"
    assert loops.envelope_from(fixed, "auto-generated", "help@4dustry.eu") == ""
    assert {"help@4dustry.eu", "support@4dustry.com"} <= loops.own_addresses(fixed)


# -- the daemon: SMTP listener and Dovecot ------------------------------------------------------


def test_two_mailboxes_over_the_smtp_listener(tmp_path: Path, smtp_sink) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink), MAILBOXES).start()
    try:
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.ehlo()
            smtp.mail("spammer@evil.net")
            assert smtp.rcpt("kasia@4dustry.com")[0] == 550
            assert smtp.rcpt("support@4dustry.com.evil.net")[0] == 550
            smtp.rset()
            english = gmail_mail("support@4dustry.com", "Cannot log in", "I cannot log in.", "C7")
            smtp.sendmail("john.smith@gmail.com", ["support+web@4dustry.com"], english)
            smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], make_mail())
            smtp.sendmail("jan@klient.pl", ["help@4dustry.eu"], make_mail(subject="Inna sprawa"))
        running.wait_idle()
        acks = {
            m.rcpt_tos[0]: m
            for m in smtp_sink.messages
            if m.message["Auto-Submitted"] == "auto-replied"
        }
        john = acks["john.smith@gmail.com"]
        assert john.mail_from == "support+bounces@4dustry.com"
        assert b"\r\nFrom: 4Dustry Support <support@4dustry.com>\r\n" in b"\r\n" + header_block(
            john.raw
        )
        jan = [m for m in smtp_sink.messages if m.rcpt_tos == ("jan@klient.pl",)]
        assert sorted(m.message["From"] for m in jan) == [
            "4Dustry <pomoc@4dustry.com>",
            "4Dustry Europe <help@4dustry.eu>",
        ]
        assert sorted(m.mail_from for m in jan) == [
            "help+bounces@4dustry.eu",
            "pomoc+bounces@4dustry.com",
        ]
        assert sorted(r["mailbox"] for r in running.store.rows("tickets")) == [
            "help@4dustry.eu",
            "pomoc@4dustry.com",
            "support@4dustry.com",
        ]
    finally:
        running.stop()


@pytest.mark.slow
def test_two_folders_on_dovecot_each_watched(tmp_path: Path, dovecot, smtp_sink) -> None:
    dovecot.create_folder("Support")
    settings = daemon_settings(smtp_sink, dovecot)
    running = InProcessDaemon(tmp_path, settings, MAILBOXES).start()
    try:
        # Filed by the server into Support: the folder says which mailbox, whatever To says.
        dovecot.append(
            gmail_mail("undisclosed-recipients:;", "FV-1", "FV-1", "C8"), folder="Support"
        )
        # INBOX is shared by pomoc@ and help@: the recipient tells them apart.
        dovecot.append(make_mail(to="help@4dustry.eu", subject="Dostawa do Wrocławia"))
        dovecot.append(make_mail(sender="ewa@firma.pl", to="Pomoc <pomoc@4dustry.com>"))
        wait_until(lambda: running.count("tickets") == 3, 15, "three tickets from two folders")
        running.wait_idle()
        mailboxes = {r["requester"]: r["mailbox"] for r in running.store.rows("tickets")}
        assert mailboxes == {
            "john.smith@gmail.com": "support@4dustry.com",
            "jan@klient.pl": "help@4dustry.eu",
            "ewa@firma.pl": "pomoc@4dustry.com",
        }
        [john] = running.store.rows("tickets", requester="john.smith@gmail.com")
        assert (john["language"], john["topic"]) == ("en", "bugs")
        froms = {
            m.rcpt_tos[0]: m.message["From"]
            for m in smtp_sink.messages
            if m.message["Auto-Submitted"] == "auto-replied"
        }
        assert froms == {
            "john.smith@gmail.com": "4Dustry Support <support@4dustry.com>",
            "jan@klient.pl": "4Dustry Europe <help@4dustry.eu>",
            "ewa@firma.pl": "4Dustry <pomoc@4dustry.com>",
        }
        for folder in ("INBOX", "Support"):
            assert all("$MailbotStored" in m.flags for m in dovecot.messages(folder)), folder
        # Both connections IDLE: new mail in either folder is picked up at once.
        dovecot.append(gmail_mail("support@4dustry.com", "Again", "Still broken.", "C9"), "Support")
        wait_until(lambda: running.count("tickets") == 4, 5, "IDLE on Support")
    finally:
        running.stop()


def test_one_listed_mailbox_is_read_from_its_own_folder(tmp_path: Path, dovecot, smtp_sink) -> None:
    dovecot.create_folder("Pomoc")
    one = '[[mailboxes]]\naddress = "pomoc@4dustry.com"\nfolder = "Pomoc"\n'
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink, dovecot), one).start()
    try:
        dovecot.append(make_mail(sender="ewa@firma.pl"), folder="Pomoc")
        wait_until(lambda: running.count("tickets") == 1, 10, "ticket from the Pomoc folder")
        assert "$MailbotStored" in dovecot.messages("Pomoc")[0].flags
    finally:
        running.stop()
