"""Hostile and automatic mail: loops, bounces, spoofing, injection, malformed and huge mail."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from email.message import EmailMessage

import pytest

from mailbot.mail.limits import check
from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail

LIMITS = {"max_size": 25_000_000, "max_header": 256_000, "max_parts": 500, "max_depth": 20}


def dsn_for(message_id: str, failed: str = "jan@klient.pl") -> bytes:
    """An RFC 3464 delivery status notification for one of our messages."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.klient.pl>\r\n"
        "To: pomoc+bounces@4dustry.com\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.klient.pl\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: 4Dustry <pomoc@4dustry.com>\r\nTo: {failed}\r\nMessage-ID: {message_id}\r\n"
        "Subject: [4Dustry #1] x\r\n--B--\r\n"
    ).encode()


# -- loops -------------------------------------------------------------------------------------


def test_our_automatic_mail_says_so_in_every_way(bot) -> None:
    bot.deliver(make_mail())
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Precedence"] == "auto_reply"
    assert ack["X-Loop"] == "pomoc@4dustry.com"


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Automatyczna odpowiedź: Problem", {}),
        ("Out of Office: Problem", {}),
        ("Nieobecność w biurze do 5.12", {}),
        ("Automatic reply: Problem", {}),
        ("Re: Problem", {"X-Autoreply": "yes"}),
        ("Re: Problem", {"X-Autorespond": "Vacation"}),
        ("Re: Problem", {"X-Loop": "pomoc@4dustry.com"}),
        ("Re: Problem", {"List-Unsubscribe": "<mailto:unsub@lista.pl>"}),
        ("Re: Problem", {"Precedence": "junk"}),
    ],
)
def test_robots_get_no_answer(bot, subject: str, headers: dict) -> None:
    bot.deliver(make_mail(subject=subject, headers=headers))
    assert bot.outbox(expected=0) == []


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@sklep.pl",
        "no-reply@sklep.pl",
        "postmaster@sklep.pl",
        "MAILER-DAEMON@sklep.pl",
        "pomoc+bounces@4dustry.com",
    ],
)
def test_machine_senders_get_no_answer(bot, sender: str) -> None:
    bot.deliver(make_mail(sender=sender))
    assert not any(m["To"] == sender for m in bot.outbox())


def test_two_autoresponders_stop_at_the_rate_limit(tmp_path, smtp_sink) -> None:
    """A careless autoresponder answers every mail with a new one; the exchange dies out."""
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    robot = "robot@careless.pl"
    answered: set[str] = set()
    try:
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail(robot, ["pomoc@4dustry.com"], make_mail(sender=robot, subject="Hello"))
        # Step by step: once the daemon is idle, whatever it was going to send to the robot has
        # arrived, and the robot answers it. The exchange is over when nothing is left to answer;
        # a daemon that kept answering would only stop at the bound, with too many answers.
        for _ in range(10):
            running.wait_idle()
            unanswered = [
                d
                for d in smtp_sink.messages
                if robot in d.rcpt_tos and d.message["Message-ID"] not in answered
            ]
            if not unanswered:
                break
            for delivery in unanswered:
                answered.add(delivery.message["Message-ID"])
                # No Auto-Submitted, no In-Reply-To, a new subject: the worst kind.
                reply = make_mail(
                    sender=robot,
                    subject=f"Thank you for your mail {len(answered)}",
                    body="We received your message and will answer soon.",
                )
                with smtplib.SMTP(*running.smtp_address) as smtp:
                    smtp.sendmail(robot, ["pomoc@4dustry.com"], reply)
        stored = running.count("inbound")
    finally:
        running.stop()
    to_robot = [d for d in smtp_sink.messages if robot in d.rcpt_tos]
    assert len(to_robot) == 3  # [limits] auto_replies_per_10min
    assert stored == 4  # all of its mail is kept: the first and three answers


# -- bounces -----------------------------------------------------------------------------------


def test_bounce_of_our_ack_lands_on_the_ticket_and_stops_automatic_mail(bot) -> None:
    bot.deliver(make_mail())
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    sent = len(bot.outbox())
    bot.deliver(dsn_for(ack["Message-ID"]), now=WARSAW_NOON + timedelta(minutes=5))
    assert len(bot.outbox()) == sent  # no reply to a bounce, ever
    [note] = bot.ctx.store.rows("messages", kind="system", direction="in")
    assert note["ticket_id"] == 1 and "jan@klient.pl" in note["text"] and "5.1.1" in note["text"]
    # The address is undeliverable for a while: no more automatic mail to it...
    bot.deliver(make_mail(subject="Nowa sprawa"), now=WARSAW_NOON + timedelta(hours=1))
    assert len([m for m in bot.outbox() if m["To"] == "jan@klient.pl"]) == 1
    events = bot.ctx.store.rows("events", kind="no-answer")
    assert events and "hard bounce" in events[0]["detail"]
    # ...and again after undeliverable_days.
    bot.deliver(make_mail(subject="Po tygodniu"), now=WARSAW_NOON + timedelta(days=8))
    assert len([m for m in bot.outbox() if m["To"] == "jan@klient.pl"]) == 2


def test_automatic_mail_leaves_with_the_dedicated_envelope_sender(tmp_path, smtp_sink) -> None:
    bot = Mailbot(tmp_path, settings=daemon_settings(smtp_sink))
    try:
        bot.deliver(make_mail())
        by_rcpt = {d.rcpt_tos[0]: d.mail_from for d in smtp_sink.messages}
        assert by_rcpt["jan@klient.pl"] == "pomoc+bounces@4dustry.com"
    finally:
        bot.close()


# -- spoofing and takeover -----------------------------------------------------------------------


def test_ticket_trick_relays_nothing_to_outsiders(bot) -> None:
    """Someone signs up to a service with the support address to read its verification mail."""
    verification = make_mail(
        sender="Chat Service <verify@chat-service.example>",
        to="pomoc+chat@4dustry.com",
        subject="Confirm your e-mail address",
        body="Your verification code is 731-442. Click https://chat.example/verify?c=731442",
    )
    bot.deliver(verification)
    for mail in bot.outbox():
        if not mail["To"].endswith("@4dustry.com"):
            assert "731" not in body_of(mail) and "verify?" not in body_of(mail)
    # The attacker cannot get into the ticket by its number either.
    bot.deliver(
        make_mail(
            sender="attacker@evil.example",
            subject="Re: [4Dustry #1] Confirm",
            body="Please resend the code.",
        ),
        now=WARSAW_NOON + timedelta(minutes=1),
    )
    assert len(bot.tickets()) == 2
    assert not any("731" in body_of(m) for m in bot.outbox() if m["To"] == "attacker@evil.example")


def test_reply_tokens_are_long_random_and_bound(bot) -> None:
    bot.deliver(make_mail())
    ids = [m["Message-ID"] for m in bot.outbox()]
    token = bot.ctx.signer.parse(ids[0])
    assert token is not None and len(token.mac) * 5 >= 128  # base32: 5 bits a character
    assert len(set(ids)) == len(ids)
    key = bot.ctx.store.tickets.key(token.ticket_id)[1]
    assert not bot.ctx.signer.verify(token, "someone.else@klient.pl", key)


# -- injection ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "=?utf-8?Q?Hello=0D=0ABcc:_victim@evil.example?=",
        "=?utf-8?B?SGVsbG8NCkJjYzogdmljdGltQGV2aWwuZXhhbXBsZQ==?=",
        "Hello\u2028Bcc: victim@evil.example",
        "=?utf-8?Q?Hello=00=0ABcc:_victim@evil.example?=",
    ],
)
def test_header_injection_never_reaches_outgoing_mail(bot, subject: str) -> None:
    raw = make_mail(subject="PLACEHOLDER", sender='"Jan\\r\\nBcc: x@evil.example" <jan@klient.pl>')
    raw = raw.replace(b"PLACEHOLDER", subject.encode("utf-8"))
    bot.deliver(raw)
    for path in sorted((bot.cfg.outbound.path / "new").iterdir()):
        data = path.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in head and b"\nBcc:" not in head
        assert b"\x00" not in data
    ack = next(m for m in bot.outbox() if m["To"] == "jan@klient.pl")
    assert ack["To"] == "jan@klient.pl" and ack["Cc"] is None


def test_html_in_mail_is_never_passed_on_as_html(bot) -> None:
    html = "<p>Pomocy</p><script>steal()</script><img src=x onerror=alert(1)>"
    raw = make_mail(subject="HTML")
    msg = __import__("email").message_from_bytes(raw, policy=__import__("email").policy.default)
    msg.set_content(html, subtype="html")
    bot.deliver(msg.as_bytes())
    for mail in bot.outbox():
        assert mail.get_content_type() == "text/plain" and not any(
            p.get_content_type() == "text/html" for p in mail.walk()
        )
        assert "<script>" not in body_of(mail) and "onerror" not in body_of(mail)


# -- malformed and huge ----------------------------------------------------------------------------


def _multipart(parts: int) -> bytes:
    body = b"".join(b"--X\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(parts))
    return (
        b"From: jan@klient.pl\r\nTo: pomoc@4dustry.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="X"\r\n\r\n' + body + b"--X--\r\n"
    )


def _nested(depth: int) -> bytes:
    head = b"From: jan@klient.pl\r\nTo: pomoc@4dustry.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    inner = b"Content-Type: text/plain\r\n\r\ncore\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        inner = (
            b'Content-Type: multipart/mixed; boundary="'
            + boundary
            + b'"\r\n\r\n--'
            + boundary
            + b"\r\n"
            + inner
            + b"\r\n--"
            + boundary
            + b"--\r\n"
        )
    return head + inner


def test_limits_pass_ordinary_mail() -> None:
    assert check(make_mail(), **LIMITS) is None
    assert check(_multipart(20), **LIMITS) is None
    assert check(_nested(5), **LIMITS) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_multipart(600), "more than 500 MIME parts"),
        (_nested(40), "levels deep"),
        (b"From: a@b.pl\r\nX-Junk: " + b"a" * 300_000 + b"\r\n\r\nbody", "header block larger"),
        (make_mail(body="x" * 1000), None),
        (
            b"From: a@b.pl\r\nContent-Type: text/plain; x=" + b"y" * 9000 + b"\r\n\r\nbody",
            "Content-Type field longer than 8192 bytes",
        ),
        (b"From: a@b.pl\r" + b"Content-Type: message/rfc822\r\r" * 100, "levels deep"),
    ],
)
def test_pathological_mail_is_quarantined_before_parsing(
    bot, raw: bytes, reason: str | None
) -> None:
    inbound_id = bot.deliver(raw)
    row = bot.inbound(inbound_id)
    if reason is None:
        assert row["status"] == "processed"
    else:
        assert row["status"] == "quarantined" and reason in row["reason"] and row["error"] is None


def test_oversize_mail_from_imap_or_import_is_quarantined(tmp_path) -> None:
    bot = Mailbot(tmp_path, settings={"inbound.smtp.max_message_size": '"10 KB"'})
    try:
        inbound_id = bot.deliver(make_mail(body="x" * 20_000))
        row = bot.inbound(inbound_id)
        assert row["status"] == "quarantined" and "larger than the 10 KB limit" in row["reason"]
        assert len(row["raw"]) > 20_000  # kept, byte for byte, for an admin to look at
    finally:
        bot.close()


def test_25_mb_message_is_processed(bot) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "jan@klient.pl", "pomoc@4dustry.com", "Rysunki"
    msg.set_content("W załączniku rysunki techniczne.")
    msg.add_attachment(
        bytes(range(256)) * (17 * 4096),
        maintype="application",
        subtype="zip",
        filename="rysunki.zip",
    )
    raw = msg.as_bytes()
    assert 24_000_000 < len(raw) < 25_000_000
    inbound_id = bot.deliver(raw)
    assert bot.inbound(inbound_id)["status"] == "processed"
    [att] = bot.ctx.store.rows("attachments")
    assert att["size"] == 256 * (17 * 4096)
