"""Agent command lines anywhere in their own text, the error mail, topic names per language."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest

from mailbot import config as config_module
from mailbot.config import ConfigError
from mailbot.pipeline import commands
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail, write_config
from tests.test_agents import ANNA, customer_mail, gmail_reply, notification, outlook_reply, ticket

LATER = WARSAW_NOON + timedelta(hours=1)


def thunderbird_reply(note, sender: str, text: str, signature: str) -> bytes:
    """Thunderbird, Polish UI: text, the "-- " signature, then the quoted notification."""
    quoted = "\n".join("> " + line for line in body_of(note).splitlines())
    body = f"{text}\n\n-- \n{signature}\n\nW dniu 30.11.2026 o 11:05, 4Dustry pisze:\n{quoted}\n"
    return make_mail(
        sender=sender,
        subject="Re: " + note["Subject"],
        body=body,
        headers={
            "In-Reply-To": note["Message-ID"],
            "References": note["Message-ID"],
            "User-Agent": "Mozilla Thunderbird",
        },
    )


def raw_to(bot: Mailbot, address: str) -> list[bytes]:
    """The bytes the transport wrote for `address`, oldest first."""
    new = bot.cfg.outbound.path / "new"
    files = sorted(new.iterdir(), key=lambda p: int(p.name.split(".")[0]))
    raws = [p.read_bytes() for p in files]
    return [r for r in raws if email.message_from_bytes(r, policy=policy.default)["To"] == address]


def customer_text(bot: Mailbot) -> str:
    """The agent's answer as the customer's client shows it, decoded from the sent bytes."""
    raws = raw_to(bot, "jan@klient.pl")
    msg = email.message_from_bytes(raws[-1], policy=policy.default)
    assert msg["Subject"].startswith("Re: ")  # the agent's reply, not the acknowledgement
    return body_of(msg)


# -- command lines below the text --------------------------------------------------------------


def test_command_after_the_sign_off_is_applied_and_never_sent(bot) -> None:
    customer_mail(bot, subject="Dostawa komponentów", body="Gdzie jest dostawa?")
    text = "Dzień dobry,\n\nprzesyłka wyszła dziś rano.\n\nPozdrawiam\nAnna\n\n#zamknij"
    bot.deliver(outlook_reply(notification(bot), ANNA, text), now=LATER)
    assert ticket(bot)["status"] == "closed"
    sent = customer_text(bot)
    assert "przesyłka wyszła dziś rano.\n\nPozdrawiam\nAnna" in sent
    assert "#zamknij" not in sent and b"#zamknij" not in raw_to(bot, "jan@klient.pl")[-1]


def test_command_between_paragraphs_leaves_no_gap(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    text = "Dzień dobry,\n\n#czeka\n\nproszę o numer zamówienia.\n\nPozdrawiam\nAnna"
    bot.deliver(gmail_reply(notification(bot), ANNA, text), now=LATER)
    assert ticket(bot)["status"] == "pending"
    assert customer_text(bot).startswith(
        "Dzień dobry,\n\nproszę o numer zamówienia.\n\nPozdrawiam\nAnna"
    )


def test_punctuation_after_a_command_word_does_not_let_it_through(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    text = "Dzień dobry,\n\ndostawa wyszła.\n\nPozdrawiam\nAnna\n\n#zamknij."
    bot.deliver(outlook_reply(notification(bot), ANNA, text), now=LATER)
    assert ticket(bot)["status"] == "closed"
    assert "#zamknij" not in customer_text(bot)


def test_note_with_a_colon_never_reaches_the_customer(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    text = "#notatka: klient dzwonił, przewoźnik potwierdził dostawę na jutro"
    bot.deliver(gmail_reply(notification(bot), ANNA, text), now=LATER)
    assert len(raw_to(bot, "jan@klient.pl")) == 1  # the acknowledgement only
    error = body_of(notification(bot, "anna@4dustry.com"))
    assert "ta komenda nie przyjmuje argumentu" in error


def test_typo_below_the_text_rejects_the_whole_reply_and_returns_the_text(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    text = "Dzień dobry,\n\ndostawa będzie w piątek.\n\nPozdrawiam\nAnna\n\n#zamkij"
    bot.deliver(gmail_reply(notification(bot), ANNA, text), now=LATER)
    assert len(raw_to(bot, "jan@klient.pl")) == 1  # the acknowledgement only
    assert ticket(bot)["status"] == "open"
    error = body_of(notification(bot, "anna@4dustry.com"))
    assert "- #zamkij – nie ma takiej komendy (może #zamknij?)\n" in error
    assert error.endswith(f"----- Twoja odpowiedź -----\n{text}\n")  # nothing to retype
    assert "Wysłano" not in error and "> " not in error  # the stripped text, without history


@pytest.mark.parametrize(
    "line",
    [
        "#123",
        "#4521 – to numer zamówienia do reklamacji.",
        "#1 priorytet to dla nas terminowość.",
        "# Instrukcja",
        "#StayHome",
        "Proszę pisać z tagiem #zamknij w temacie wątku na forum.",
    ],
)
def test_lines_with_a_hash_that_are_not_commands_reach_the_customer(bot, line: str) -> None:
    customer_mail(bot, subject="Dostawa")
    text = f"Dzień dobry,\n\n{line}\n\nPozdrawiam\nAnna"
    bot.deliver(outlook_reply(notification(bot), ANNA, text), now=LATER)
    assert line in customer_text(bot)
    assert ticket(bot)["status"] == "open"
    assert not bot.ctx.store.rows("events", kind="commands-rejected")


def test_command_in_the_quoted_history_is_neither_applied_nor_rejected(bot) -> None:
    customer_mail(bot, subject="Dostawa", body="Dzień dobry,\n\n#zamknij\n\nto był test.")
    bot.deliver(gmail_reply(notification(bot), ANNA, "Dziękuję, sprawdzam."), now=LATER)
    assert ticket(bot)["status"] == "open"
    assert customer_text(bot).startswith("Dziękuję, sprawdzam.")
    assert not bot.ctx.store.rows("events", kind="commands-rejected")


def test_command_below_a_dash_dash_signature_counts_but_hashtags_there_do_not(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    signature = "Anna Kowalska\n4Dustry | dział logistyki\n#Industry40\n#czeka"
    text = "Proszę o numer listu przewozowego."
    reply = thunderbird_reply(notification(bot), ANNA, text, signature)
    bot.deliver(reply, now=LATER)
    assert ticket(bot)["status"] == "pending"
    sent = customer_text(bot)
    assert sent.startswith("Proszę o numer listu przewozowego.")
    assert "#czeka" not in sent and "Industry40" not in sent  # the signature is never sent


def test_error_mail_in_english_where_staff_read_english(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path, default_language='"en"')
    try:
        customer_mail(bot, subject="Delivery")
        text = "Hello,\n\nshipped today.\n\n#topic shiping\n#priority high"
        bot.deliver(outlook_reply(notification(bot), ANNA, text, polish=False), now=LATER)
        error = notification(bot, "anna@4dustry.com")
        body = body_of(error)
        assert error["Subject"] == "[4Dustry #1] Commands not applied"
        assert "- #topic shiping: the topics are bugs, logistics, privacy, registration\n" in body
        assert "- #priority high: the priority is urgent or normal\n" in body
        assert "#close                      close the ticket" in body
        assert body.endswith(f"----- your reply -----\n{text}\n\nAnna Kowalska\n4Dustry\n")
        assert not any(word in body for word in ("zgłoszeni", "komend", "Twoja"))
    finally:
        bot.close()


@pytest.mark.parametrize(
    ("word", "is_command"),
    [
        ("zamknij", True), ("ZAMKNIJ", True), ("otwórz", True), ("zamkij", True),
        ("zamnkij", True), ("clsoe", True), ("zamk", True), ("notatki", True),
        ("StayHome", False), ("Industry40", False), ("dostawa", False), ("ok", False),
        ("pilne", False), ("zamknięte", False),
    ],
)  # fmt: skip
def test_which_lone_words_count_as_commands(word: str, is_command: bool) -> None:
    assert commands.is_command_word(word) is is_command


# -- topic names per language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "topic"),
    [
        ("#temat logistyka", "logistics"),
        ("#temat Błędy", "bugs"),
        ("#TEMAT bledy", "bugs"),
        ("#temat ochrona  danych", "privacy"),
        ("#topic Rejestracja", "registration"),
        ("#temat privacy", "privacy"),
    ],
)
def test_topic_by_its_name_in_any_language(bot, line: str, topic: str) -> None:
    customer_mail(bot, subject="Pytanie")
    bot.deliver(outlook_reply(notification(bot), ANNA, f"{line}\n\nPrzekazuję."), now=LATER)
    assert ticket(bot)["topic"] == topic


def test_unknown_topic_lists_the_names_in_the_agents_language(bot) -> None:
    customer_mail(bot, subject="Pytanie")
    bot.deliver(outlook_reply(notification(bot), ANNA, "#temat magazyn\n\nPrzekazuję."), now=LATER)
    error = body_of(notification(bot, "anna@4dustry.com"))
    assert (
        "- #temat magazyn – dostępne tematy: błędy, logistyka, ochrona danych, rejestracja\n"
        in error
    )


def test_notifications_name_the_topic_in_the_readers_language(tmp_path: Path) -> None:
    for language, expected in (("pl", "temat: logistyka"), ("en", "topic: logistics")):
        (tmp_path / language).mkdir()
        bot = Mailbot(tmp_path / language, default_language=f'"{language}"')
        try:
            customer_mail(bot, subject="Dostawa komponentów")
            assert expected in body_of(notification(bot))
        finally:
            bot.close()


def test_topic_names_are_checked(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace('names = { pl = "błędy" }', 'names = { pl = "błędy", de = "Fehler" }')
    text = text.replace('names = { pl = "rejestracja" }', 'names = { pl = "Logistyka" }')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config_module.load(path)
    assert info.value.problems == [
        "config.toml: [topics.0] names: de is not in [mailbot] languages",
        "config.toml: [topics.3] names: 'logistyka' is also a name of topics.1",
    ]
