"""Agents answer from their mail client: authentication, quote stripping, commands, routing."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import WARSAW_NOON, body_of, make_mail

ANNA = "Anna Kowalska <anna@4dustry.com>"
TOMASZ = "Tomasz Nowak <tomasz@4dustry.com>"


def outlook_reply(note: EmailMessage, sender: str, text: str, polish: bool = True) -> bytes:
    """An agent's answer as Outlook writes it: new text on top, the notification below."""
    quoted = body_of(note)
    header = (
        "Od: 4Dustry <pomoc@4dustry.com>\nWysłano: poniedziałek, 30 listopada 2026 11:05\n"
        f"Do: {sender}\nTemat: {note['Subject']}\n"
        if polish
        else "From: 4Dustry <pomoc@4dustry.com>\nSent: Monday, November 30, 2026 11:05 AM\n"
        f"To: {sender}\nSubject: {note['Subject']}\n"
    )
    body = f"{text}\n\nAnna Kowalska\n4Dustry\n\n{header}\n{quoted}"
    return make_mail(
        sender=sender,
        subject=("Odp: " if polish else "RE: ") + note["Subject"],
        body=body,
        headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
    )


def gmail_reply(note: EmailMessage, sender: str, text: str) -> bytes:
    quoted = "\n".join("> " + line for line in body_of(note).splitlines())
    body = (
        f"{text}\n\nOn Mon, Nov 30, 2026 at 11:05 AM 4Dustry <pomoc@4dustry.com> wrote:\n{quoted}\n"
    )
    return make_mail(
        sender=sender,
        subject="Re: " + note["Subject"],
        body=body,
        headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
    )


def notification(bot, to: str = "anna@4dustry.com", index: int = -1) -> EmailMessage:
    notes = [m for m in bot.outbox() if m["To"] == to]
    assert notes, f"no mail to {to}"
    return notes[index]


def customer_mail(bot, **kwargs) -> EmailMessage:
    mid = kwargs.pop("message_id", make_msgid(domain="klient.pl"))
    bot.deliver(make_mail(message_id=mid, **kwargs))
    return mid


def ticket(bot, ticket_id: int = 1) -> dict:
    return dict(bot.ctx.store.tickets.get(ticket_id))


def state(bot) -> tuple:
    """Everything an attacker could try to change, for before/after comparisons."""
    store = bot.ctx.store
    return (
        [dict(r) for r in store.rows("tickets")],
        sum(not r["to_addr"].endswith("@4dustry.com") for r in store.rows("outbox")),
    )


# -- replies -----------------------------------------------------------------------------------


def test_agent_reply_reaches_the_customer_clean_threaded_and_signed(bot) -> None:
    first = customer_mail(bot, subject="Dostawa komponentów", body="Gdzie jest moja dostawa?")
    note = notification(bot)  # topic logistics → Anna
    reply = outlook_reply(note, ANNA, "Dzień dobry,\n\ndostawa wyjdzie jutro rano.")
    bot.deliver(reply, now=WARSAW_NOON + timedelta(hours=1))
    to_customer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"]
    answer = to_customer[-1]
    text = body_of(answer)
    assert text.startswith("Dzień dobry,\n\ndostawa wyjdzie jutro rano.")
    for leak in ("Gdzie jest moja dostawa", "Wysłano:", "Nowe zgłoszenie", "pomoc@4dustry.com>"):
        assert leak not in text
    assert "Zespół wsparcia 4Dustry" in text  # the configured footer
    assert str(answer["From"]) == "Anna | 4Dustry <pomoc@4dustry.com>"
    assert answer["Subject"] == "Re: [4Dustry #1] Dostawa komponentów"
    assert answer["In-Reply-To"] == first and first in answer["References"]
    assert answer["Auto-Submitted"] is None  # a person's answer
    t = ticket(bot)
    assert t["first_response_at"] is not None and t["assignee"] == "anna@4dustry.com"
    kinds = [(r["direction"], r["kind"]) for r in bot.ctx.store.rows("messages")]
    assert ("out", "agent") in kinds


def test_customer_follow_up_after_assignment_goes_to_the_assignee_only(bot) -> None:
    customer_mail(bot, subject="Pytanie o zamówienie")  # no topic → every agent notified
    assert {m["To"] for m in bot.outbox() if m["To"].endswith("@4dustry.com")} == {
        "anna@4dustry.com",
        "tomasz@4dustry.com",
    }
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "Sprawdzam."), now=WARSAW_NOON + timedelta(hours=1)
    )
    before = len([m for m in bot.outbox() if m["To"] == "tomasz@4dustry.com"])
    bot.deliver(
        make_mail(subject="Re: [4Dustry #1] x", body="Dziękuję, czekam."),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    assert len([m for m in bot.outbox() if m["To"] == "tomasz@4dustry.com"]) == before
    assert "Dziękuję, czekam." in body_of(notification(bot, "anna@4dustry.com"))


def test_agent_attachments_go_to_the_customer_but_not_signature_logos(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    note = notification(bot)
    raw = outlook_reply(note, ANNA, "W załączniku list przewozowy.")
    msg = __import__("email").message_from_bytes(raw, policy=__import__("email").policy.default)
    msg.add_attachment(
        b"%PDF-1.4 waybill", maintype="application", subtype="pdf", filename="list przewozowy.pdf"
    )
    msg.add_attachment(
        b"\x89PNG logo",
        maintype="image",
        subtype="png",
        filename="image001.png",
        disposition="inline",
        cid="<logo@anna>",
    )
    bot.deliver(msg.as_bytes(), now=WARSAW_NOON + timedelta(hours=1))
    answer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][-1]
    names = [part.get_filename() for part in answer.iter_attachments()]
    assert names == ["list przewozowy.pdf"]
    assert next(answer.iter_attachments()).get_content() == b"%PDF-1.4 waybill"


def test_reply_copies_the_customers_ccs(bot) -> None:
    customer_mail(bot, subject="Dostawa", headers={"Cc": "Szef <szef@klient.pl>, anna@4dustry.com"})
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "Już sprawdzam."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    answer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][-1]
    assert answer["Cc"] == "szef@klient.pl"


# -- commands ----------------------------------------------------------------------------------


def test_polish_commands_assign_and_pending(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    reply = outlook_reply(
        notification(bot), ANNA, "#przypisz tomasz\n#CZEKA\n\nProszę o numer zamówienia."
    )
    bot.deliver(reply, now=WARSAW_NOON + timedelta(hours=1))
    t = ticket(bot)
    assert (t["status"], t["assignee"]) == ("pending", "tomasz@4dustry.com")
    answer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][-1]
    assert body_of(answer).startswith("Proszę o numer zamówienia.")
    assert "#czeka" not in body_of(answer).lower() and "przypisz" not in body_of(answer)
    events = [e for e in bot.ctx.store.rows("events") if e["kind"] in ("assign", "pending")]
    assert {(e["actor"], e["kind"]) for e in events} == {
        ("anna@4dustry.com", "assign"),
        ("anna@4dustry.com", "pending"),
    }


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("#priority urgent", {"priority": "urgent"}),
        ("#priorytet pilny", {"priority": "urgent"}),
        ("#lang en", {"language": "en"}),
        ("#język en", {"language": "en"}),
        ("#jezyk EN", {"language": "en"}),
        ("#topic privacy", {"topic": "privacy"}),
        ("#temat Rejestration", None),
        ("#temat registration", {"topic": "registration"}),
        ("#assign tomasz@4dustry.com", {"assignee": "tomasz@4dustry.com"}),
        ("#przypisz Tomasz Nowak", {"assignee": "tomasz@4dustry.com"}),
        ("#zamknij", {"status": "closed"}),
        ("#close", {"status": "closed"}),
    ],
)
def test_each_command(bot, lines: str, expected: dict | None) -> None:
    customer_mail(bot, subject="Dostawa")
    before = ticket(bot)
    bot.deliver(
        outlook_reply(notification(bot), ANNA, f"{lines}\n\nOdpowiedź."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    after = ticket(bot)
    if expected is None:
        assert {k: after[k] for k in ("status", "topic", "priority")} == {
            k: before[k] for k in ("status", "topic", "priority")
        }
        return
    assert {k: after[k] for k in expected} == expected


def test_reopen_after_close(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "#close\n\nZałatwione."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    assert ticket(bot)["status"] == "closed"
    error_free = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    bot.deliver(
        outlook_reply(error_free[0], ANNA, "#otwórz\n#notatka\nJednak jeszcze nie."),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    assert ticket(bot)["status"] == "open"


def test_unknown_command_is_reported_and_nothing_is_half_applied(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    before = state(bot)
    reply = outlook_reply(
        notification(bot), ANNA, "#przypisz tomasz\n#zamknji\n#priorytet bardzo\n\nTreść."
    )
    bot.deliver(reply, now=WARSAW_NOON + timedelta(hours=1))
    assert state(bot) == before  # no assignment, no reply to the customer
    error = notification(bot, "anna@4dustry.com")
    text = body_of(error)
    assert "- #zamknji – nie ma takiej komendy (może #zamknij?)\n" in text
    assert "- #priorytet bardzo – priorytet może być pilny albo normalny\n" in text
    assert "#notatka" in text and "#temat NAZWA" in text  # the list of valid commands
    assert "unknown" not in text and "use urgent" not in text  # no English in a Polish mail
    notes = bot.ctx.store.rows("messages", kind="note")
    assert len(notes) == 1  # the agent's words are kept, internally


def test_note_stays_internal(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    before = state(bot)[1]
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "#note\nKlient dzwonił, sprawa u przewoźnika."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    assert state(bot)[1] == before
    [note] = bot.ctx.store.rows("messages", kind="note")
    assert note["text"].startswith("Klient dzwonił, sprawa u przewoźnika.")
    assert "Nowe zgłoszenie" not in note["text"]  # the quoted notification is stripped
    assert ticket(bot)["first_response_at"] is None  # a note is no answer to the customer


# -- authentication ----------------------------------------------------------------------------


SPOOF_TEXT = "#close\n#priorytet pilny\n\nTu Anna, proszę przelać pieniądze na konto 123."


def _spoof(bot, case: str) -> bytes:
    """Mail claiming to be Anna's, acting on ticket 2, in one of four ways."""
    customer_mail(bot, sender="a@firma-a.pl", subject="Pytanie A")  # no topic: both notified
    customer_mail(bot, sender="b@firma-b.pl", subject="Pytanie B")
    anna_1 = notification(bot, "anna@4dustry.com", 0)
    tomasz_2 = notification(bot, "tomasz@4dustry.com", 1)
    if case == "no token":
        return make_mail(sender=ANNA, subject="Re: [4Dustry #2] Pytanie B", body=SPOOF_TEXT)
    if case == "forged Authentication-Results":
        return make_mail(
            sender=ANNA,
            subject="Re: [4Dustry #2] Pytanie B",
            body=SPOOF_TEXT,
            headers={"Authentication-Results": "mx.evil.net; dmarc=pass header.from=4dustry.com"},
        )
    if case == "another agent's token":
        return gmail_reply(tomasz_2, ANNA, SPOOF_TEXT)  # Tomasz's token, presented by Anna
    # Anna's genuine token for ticket 1, its ticket number changed to 2.
    raw = gmail_reply(anna_1, ANNA, SPOOF_TEXT)
    return raw.replace(b"<mb.1.agent.", b"<mb.2.agent.").replace(b"[4Dustry #1]", b"[4Dustry #2]")


SPOOFS = [
    "no token",
    "forged Authentication-Results",
    "another agent's token",
    "another ticket's token",
]


@pytest.mark.parametrize("case", SPOOFS)
def test_spoofed_agent_mail_changes_nothing_and_reaches_no_customer(tmp_path, case: str) -> None:
    from tests.helpers import Mailbot

    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        raw = _spoof(bot, case)
        before = state(bot)
        bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=1))
        assert state(bot) == before
        [note] = bot.ctx.store.rows("messages", verified=0)
        assert note["kind"] == "note" and note["ticket_id"] == 2
        warned = [m for m in bot.outbox() if "UWAGA" in m["Subject"]]
        assert {m["To"] for m in warned} == {"anna@4dustry.com", "tomasz@4dustry.com"}
    finally:
        bot.close()


def test_dmarc_pass_from_a_trusted_authserv_id_authenticates_a_fresh_mail(tmp_path) -> None:
    from tests.helpers import Mailbot

    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        customer_mail(bot, subject="Dostawa")
        raw = make_mail(
            sender=ANNA,
            subject="[4Dustry #1] Dostawa",
            body="#czeka\n\nProszę o numer zamówienia.",
            headers={
                "Authentication-Results": "mx.4dustry.com; spf=pass; dkim=pass;"
                " dmarc=pass (p=reject) header.from=4dustry.com"
            },
        )
        bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=1))
        assert ticket(bot)["status"] == "pending"
        answer = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][-1]
        assert body_of(answer).startswith("Proszę o numer zamówienia.")
    finally:
        bot.close()


# -- customer side -----------------------------------------------------------------------------


def _answered_and_closed(bot) -> EmailMessage:
    """A customer's ticket that Anna answered and closed; returns her answer as sent."""
    customer_mail(bot, subject="Dostawa")
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "#zamknij\n\nGotowe."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    return [m for m in bot.outbox() if m["To"] == "jan@klient.pl"][-1]


def test_customer_reply_reopens_a_recently_closed_ticket(bot) -> None:
    answer = _answered_and_closed(bot)
    reply = make_mail(
        subject="Re: " + answer["Subject"],
        body="Jednak nie dotarło.",
        headers={"In-Reply-To": answer["Message-ID"]},
    )
    bot.deliver(reply, now=WARSAW_NOON + timedelta(days=3))
    assert ticket(bot)["status"] == "open" and len(bot.tickets()) == 1


def test_customer_reply_after_the_window_opens_a_linked_ticket(bot) -> None:
    answer = _answered_and_closed(bot)
    reply = make_mail(
        subject="Re: " + answer["Subject"],
        body="Znowu problem.",
        headers={"In-Reply-To": answer["Message-ID"]},
    )
    bot.deliver(reply, now=WARSAW_NOON + timedelta(days=20))
    tickets = bot.tickets()
    assert (
        len(tickets) == 2
        and tickets[1]["previous_ticket"] == 1
        and tickets[0]["status"] == "closed"
    )


def test_topic_routing_and_topic_command(bot) -> None:
    customer_mail(bot, subject="Błąd w aplikacji", body="Aplikacja pokazuje błąd 500.")
    assert ticket(bot)["topic"] == "bugs"
    assert [m["To"] for m in bot.outbox() if m["To"].endswith("@4dustry.com")] == [
        "tomasz@4dustry.com"
    ]
    note = notification(bot, "tomasz@4dustry.com")
    bot.deliver(
        gmail_reply(note, TOMASZ, "#temat logistics\n#note\nTo jednak dostawa."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    assert ticket(bot)["topic"] == "logistics"


# -- end to end through the daemon ---------------------------------------------------------------


def _sent_to(sink, address: str) -> list[EmailMessage]:
    return [m.message for m in sink.messages if address in m.rcpt_tos]


def test_polish_outlook_conversation_through_the_daemon(tmp_path, smtp_sink) -> None:
    import smtplib

    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    try:
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail(
                "jan@klient.pl",
                ["pomoc@4dustry.com"],
                make_mail(subject="Opóźniona dostawa materiałów", body="Dostawa nie dotarła."),
            )
        running.wait_idle()
        note = _sent_to(smtp_sink, "anna@4dustry.com")[0]
        reply = outlook_reply(
            note, ANNA, "#przypisz anna\n#czeka\n\nDzień dobry, proszę podać numer zamówienia."
        )
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail("anna@4dustry.com", ["pomoc@4dustry.com"], reply)
        running.wait_idle()
        answers = _sent_to(smtp_sink, "jan@klient.pl")
        ack, answer = answers[0], answers[1]
        words = body_of(answer).split("\n-- \n")[0].strip()
        assert words == "Dzień dobry, proszę podać numer zamówienia.\n\nAnna Kowalska\n4Dustry"
        assert answer["References"].split()[0] in ack["References"]  # one conversation
        assert "[4Dustry #1]" in answer["Subject"] and "[4Dustry #1]" in ack["Subject"]
        row = running.store.tickets.get(1)
        assert (row["status"], row["assignee"]) == ("pending", "anna@4dustry.com")
    finally:
        running.stop()


def test_english_gmail_conversation_through_the_daemon(tmp_path, smtp_sink) -> None:
    import smtplib

    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    try:
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail(
                "john@example.com",
                ["pomoc@4dustry.com"],
                make_mail(
                    sender="John <john@example.com>",
                    subject="Registration fails",
                    body="Hello, I cannot sign up for an account. Could you help?",
                ),
            )
        running.wait_idle()
        note = _sent_to(smtp_sink, "tomasz@4dustry.com")[0]
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail(
                "tomasz@4dustry.com",
                ["pomoc@4dustry.com"],
                gmail_reply(note, TOMASZ, "#close\n\nHello John,\n\nyour account is active now."),
            )
        running.wait_idle()
        answers = _sent_to(smtp_sink, "john@example.com")
        text = body_of(answers[1])
        assert text.startswith("Hello John,\n\nyour account is active now.")
        assert "wrote:" not in text and "cannot sign up" not in text and "#close" not in text
        assert str(answers[1]["From"]) == "Tomasz | 4Dustry <pomoc@4dustry.com>"
        assert running.store.tickets.get(1)["status"] == "closed"
    finally:
        running.stop()


def test_queue_position_counts_only_unanswered_open_tickets(bot) -> None:
    for n in range(3):
        customer_mail(bot, sender=f"k{n}@firma{n}.pl", subject=f"Pytanie {n}")
    first_note = notification(bot, "anna@4dustry.com", 0)
    bot.deliver(outlook_reply(first_note, ANNA, "Odpowiedź."), now=WARSAW_NOON + timedelta(hours=1))
    second_note = notification(bot, "anna@4dustry.com", 1)
    bot.deliver(
        outlook_reply(second_note, ANNA, "#czeka\n\nProszę o szczegóły."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    customer_mail(bot, sender="nowy@firma.pl", subject="Pytanie 4")
    ack = next(m for m in bot.outbox() if m["To"] == "nowy@firma.pl")
    assert "2. w kolejce" in body_of(ack)  # ticket 3 and the new one; 1 answered, 2 pending
    counted = bot.ctx.store.count("tickets", status="open", first_response_at=None)
    assert bot.ctx.store.tickets.queue_length() == counted
