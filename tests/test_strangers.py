"""Strangers who quote a ticket's Message-ID, and removed agents, do not change the ticket."""

from __future__ import annotations

from datetime import timedelta
from email.utils import make_msgid

from tests import helpers
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail
from tests.test_agents import ANNA, customer_mail, notification, outlook_reply

STRANGER = "Piotr Zieliński <piotr@inna-firma.pl>"


def thunderbird_reply(subject: str, parent: str, refs: str, sender: str, text: str) -> bytes:
    """A reply as Thunderbird writes it: References lists the thread, In-Reply-To the parent."""
    return make_mail(
        sender=sender,
        subject="Re: " + subject,
        body=f"{text}\n\nW dniu 30.11.2026 o 11:00, pomoc@4dustry.com pisze:\n> Dzień dobry",
        headers={"In-Reply-To": parent, "References": refs, "User-Agent": "Thunderbird/128.5"},
        message_id=make_msgid(domain="inna-firma.pl"),
    )


def _ticket(bot, ticket_id: int) -> dict:
    return dict(bot.ctx.store.tickets.get(ticket_id))


def _closed_ticket(bot) -> tuple[str, dict]:
    """Ticket 1, answered and closed by Anna; the customer's Message-ID and the ticket row."""
    original = customer_mail(bot, subject="Dostawa")
    bot.deliver(
        outlook_reply(notification(bot), ANNA, "#zamknij\n\nGotowe."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    closed = _ticket(bot, 1)
    assert closed["status"] == "closed"
    return original, closed


def test_a_stranger_quoting_the_customers_message_id_opens_a_linked_ticket(bot) -> None:
    original, closed = _closed_ticket(bot)
    sent = len(bot.outbox())
    raw = thunderbird_reply("Dostawa", original, original, STRANGER, "Gdzie jest moja paczka?")
    bot.deliver(raw, now=WARSAW_NOON + timedelta(days=2))
    assert _ticket(bot, 1) == closed  # not reopened, not touched
    new = _ticket(bot, 2)
    assert new["requester"] == "piotr@inna-firma.pl" and new["previous_ticket"] == 1
    assert new["status"] == "open"
    mail = bot.outbox()[sent:]
    notices = [m for m in mail if m["To"].endswith("@4dustry.com")]
    assert notices and all("#2" in m["Subject"] for m in notices)
    assert all(
        "Nawiązuje do zgłoszenia #1, w którym nadawca nie uczestniczy." in body_of(m)
        for m in notices
    )
    # The stranger gets the ack of their own ticket; nobody else outside 4Dustry gets anything.
    [ack] = [m for m in mail if not m["To"].endswith("@4dustry.com")]
    assert ack["To"] == "piotr@inna-firma.pl" and "#2" in ack["Subject"]
    old_events = bot.ctx.store.rows("events", ticket_id=1, kind="linked")
    assert len(old_events) == 1 and "piotr@inna-firma.pl" in old_events[0]["detail"]
    [new_event] = bot.ctx.store.rows("events", ticket_id=2, kind="linked")
    assert "#1" in new_event["detail"]


def test_a_stranger_quoting_our_ack_does_not_touch_an_open_ticket(bot) -> None:
    customer_mail(bot, subject="Faktura")
    before = _ticket(bot, 1)
    [ack] = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"]
    raw = thunderbird_reply(
        ack["Subject"], ack["Message-ID"], ack["Message-ID"], STRANGER, "To ja dopisuję."
    )
    bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=2))
    assert _ticket(bot, 1) == before
    assert not bot.ctx.store.rows("messages", ticket_id=1, from_addr="piotr@inna-firma.pl")
    assert _ticket(bot, 2)["previous_ticket"] == 1


def test_a_participant_quoting_a_message_id_still_reopens(bot) -> None:
    """The requester's own reply (here without our token: the customer's Message-ID only)."""
    original, _ = _closed_ticket(bot)
    raw = thunderbird_reply("Dostawa", original, original, "Jan Kowalski <jan@klient.pl>", "Nie.")
    bot.deliver(raw, now=WARSAW_NOON + timedelta(days=2))
    assert _ticket(bot, 1)["status"] == "open" and len(bot.tickets()) == 1


def test_a_removed_agents_old_token_no_longer_acts(tmp_path, monkeypatch) -> None:
    bot = Mailbot(tmp_path)
    try:
        _closed_ticket(bot)
        customer_mail(bot, subject="Druga sprawa", sender="Ewa Nowak <ewa@klient.pl>")
        note = notification(bot, "anna@4dustry.com")
        closed = _ticket(bot, 1)
    finally:
        bot.close()
    # Anna leaves: her address is no longer an agent's (a new colleague takes her topics).
    write_config = helpers.write_config

    def without_anna(directory, *args, **kwargs):
        path = write_config(directory, *args, **kwargs)
        text = path.read_text(encoding="utf-8").replace("anna@4dustry.com", "ola@4dustry.com")
        path.write_text(text, encoding="utf-8")
        return path

    monkeypatch.setattr(helpers, "write_config", without_anna, raising=True)
    bot = Mailbot(tmp_path)
    try:
        assert bot.cfg.agent("anna@4dustry.com") is None
        first_note = next(m for m in bot.outbox() if m["To"] == "anna@4dustry.com")
        sent = len(bot.outbox())
        bot.deliver(
            outlook_reply(first_note, ANNA, "#otworz\n\nProszę o przelew na konto 123."),
            now=WARSAW_NOON + timedelta(days=1),
        )
        bot.deliver(
            outlook_reply(note, ANNA, "#zamknij\n\nZałatwione."),
            now=WARSAW_NOON + timedelta(days=1, minutes=5),
        )
        assert _ticket(bot, 1) == closed
        assert _ticket(bot, 2)["status"] == "open"  # Ewa's ticket: not closed by Anna
        customers = [m for m in bot.outbox()[sent:] if m["To"].endswith("@klient.pl")]
        assert customers == []
        linked = [t for t in bot.tickets() if t["requester"] == "anna@4dustry.com"]
        assert [t["previous_ticket"] for t in linked] == [1, 2]
    finally:
        bot.close()
