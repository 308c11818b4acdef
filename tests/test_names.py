"""Names a sender controls, shown to staff: display names, requester addresses, file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.mail.automatic import detect_automatic
from mailbot.mail.parse import parse
from tests.helpers import WARSAW_NOON, body_of

BIDI = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice\u202egpj.exe" reads "invoiceexe.jpg"


def mail_from(from_header: str, *, body: str = "Dzień dobry, proszę o fakturę.") -> bytes:
    """A plain-text message with this From header exactly as written (Thunderbird's shape)."""
    return (
        f"From: {from_header}\r\n"
        "To: pomoc@4dustry.com\r\n"
        "Subject: Faktura za listopad\r\n"
        "Date: Mon, 30 Nov 2026 11:00:00 +0100\r\n"
        "Message-ID: <8c1d0e2a-5f0b-4d0e-9b1a-3c2f6a7e9d10@klient.pl>\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=UTF-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


# -- requester addresses: encoded-words are decoded after the address is parsed ------------


@pytest.mark.parametrize(
    ("from_header", "name"),
    [
        # Outlook: "Kowalski: v" in a q-encoded word with a literal colon.
        ("=?utf-8?q?Jan_Kowalski:_v?= <jan@klient.pl>", "Jan Kowalski: v"),
        ("=?utf-8?q?Jan_Kowalski=3A_v?= <jan@klient.pl>", "Jan Kowalski: v"),
        # The shape that made "_v@evil.example=0d=0a?=" the requester.
        (
            "=?utf-8?q?Jan:_v@evil.example=0D=0A?= <jan@klient.pl>",
            "Jan: v@evil.example (jan@klient.pl)",
        ),
        (
            "=?UTF-8?Q?Jan_<x@evil.example>,?= <jan@klient.pl>",
            "Jan <x@evil.example>, (jan@klient.pl)",
        ),
        ("=?UTF-8?Q?Pawe=C5=82_Nowak=2C_Dzia=C5=82_IT?= <jan@klient.pl>", "Paweł Nowak, Dział IT"),
        # Gmail splits long names into several words.
        (
            "=?UTF-8?Q?Zbigniew_Ole=C5=9B?= =?UTF-8?Q?nicki:?= <jan@klient.pl>",
            "Zbigniew Oleśnicki:",
        ),
        # Outlook quotes the encoded word.
        ('"=?utf-8?q?Jan_Kowalski:_v?=" <jan@klient.pl>', "Jan Kowalski: v"),
    ],
)
def test_encoded_display_names_never_split_the_requester_address(
    from_header: str, name: str
) -> None:
    parsed = parse(mail_from(from_header))
    assert parsed.from_addr == "jan@klient.pl"
    assert parsed.from_name == name


def test_an_encoded_word_is_never_an_address() -> None:
    parsed = parse(mail_from("=?utf-8?q?jan@klient.pl?="))
    assert parsed.from_addr == ""


# -- display names shown to agents ---------------------------------------------------------


@pytest.mark.parametrize(
    ("from_header", "name"),
    [
        ('"ceo@4dustry.com" <x@evil.example>', "ceo@4dustry.com (x@evil.example)"),
        ('"Prezes ceo@4dustry.com" <x@evil.example>', "Prezes ceo@4dustry.com (x@evil.example)"),
        # Many clients send the address as the name: nothing to add, the address is shown.
        ('"jan@klient.pl" <jan@klient.pl>', ""),
        # The real address in the name already: the name stays as written.
        ('"Jan Kowalski (jan@klient.pl)" <jan@klient.pl>', "Jan Kowalski (jan@klient.pl)"),
        ("=?utf-8?q?Jan_Kowalski=E2=80=AE?= <jan@klient.pl>", "Jan Kowalski"),
        ("=?utf-8?b?4oCuSmFuIEtvd2Fsc2tp?= <jan@klient.pl>", "Jan Kowalski"),
        ("=?utf-8?q?Jan=E2=80=A8Status:_zamkni=C4=99te?= <jan@klient.pl>", "Jan Status: zamknięte"),
        ("=?utf-8?q?" + "A" * 300 + "?= <jan@klient.pl>", "A" * 99 + "…"),
        ("Jan Kowalski <jan@klient.pl>", "Jan Kowalski"),
    ],
)
def test_display_names_are_safe_to_show(from_header: str, name: str) -> None:
    parsed = parse(mail_from(from_header))
    assert parsed.from_addr in ("jan@klient.pl", "x@evil.example")
    assert parsed.from_name == name


def test_agents_see_the_real_address_of_an_address_like_name(bot) -> None:
    bot.deliver(mail_from('"ceo@4dustry.com" <x@evil.example>'), now=WARSAW_NOON)
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    assert "ceo@4dustry.com (x@evil.example) <x@evil.example>" in body_of(note)
    # Outlook shows the From name alone: the real address must be in it.
    assert note["From"].addresses[0].display_name == "ceo@4dustry.com (x@evil.example) via 4Dustry"
    [ticket] = bot.tickets()
    assert ticket["requester"] == "x@evil.example"


def test_bidi_controls_never_reach_agents(bot) -> None:
    bot.deliver(mail_from("=?utf-8?q?=E2=80=AEJan_Kowalski?= <jan@klient.pl>"), now=WARSAW_NOON)
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    raw = note.as_bytes()
    assert "Jan Kowalski <jan@klient.pl>" in body_of(note)
    assert BIDI.encode() not in raw and b"=E2=80=AE" not in raw and b"4oCu" not in raw


# -- bounces only flufl.bounce recognises ---------------------------------------------------
# A gateway's notice sent from the failed mailbox's own address under the original subject
# ("RE: …") with "non remis (delivery failed)" appended: our rules take "RE:" from a person
# for a human reply; GNU Mailman's detectors know the notice's wording.

SIMPLE_20 = "flufl-bounce/data/simple_20.txt"


def test_gateway_notice_under_a_reply_subject_is_a_bounce(bot, corpus: Path) -> None:
    raw = (corpus / SIMPLE_20).read_bytes()
    found = detect_automatic(parse(raw).message, own_domains=("4dustry.com",))
    assert found is not None and found.kind == "bounce" and found.bounce is not None
    assert found.bounce.recipients == ("duke@ald.socgen.com",)
    assert found.bounce.permanent
    bot.deliver(raw, now=WARSAW_NOON)
    assert bot.outbox() == []  # no acknowledgement to a mail system


def test_customer_quoting_that_notice_is_answered(bot, corpus: Path) -> None:
    """Outlook's reply: the customer's words above the quoted notice, under "RE:"."""
    notice = (corpus / SIMPLE_20).read_bytes().split(b"\n\n", 1)[1].decode()
    raw = (
        "From: Jan Kowalski <jan@klient.pl>\r\n"
        "To: pomoc@4dustry.com\r\n"
        "Subject: RE: Zamówienie 123 : non remis (delivery failed)\r\n"
        "Date: Mon, 30 Nov 2026 11:00:00 +0100\r\n"
        "Message-ID: <DB9PR02MB7164A1B2C3D4E5F6A7B8C9D0E1F2A3B4@DB9PR02MB7164.eurprd02.prod"
        ".outlook.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
        "Dzień dobry,\r\n\r\ndostałem taki komunikat. Czy moje zamówienie do Państwa dotarło?\r\n"
        "\r\nJan Kowalski\r\n\r\n"
        "From: Dsicspiibs.spi-internet@socgen.com <Dsicspiibs.spi-internet@socgen.com>\r\n"
        "Sent: Monday, November 30, 2026 10:12 AM\r\n"
        "To: Jan Kowalski <jan@klient.pl>\r\n"
        "Subject: RE: Zamówienie 123 : non remis (delivery failed)\r\n\r\n"
        + notice.replace("\n", "\r\n")
    ).encode()
    assert detect_automatic(parse(raw).message, own_domains=("4dustry.com",)) is None
    bot.deliver(raw, now=WARSAW_NOON)
    assert [m["To"] for m in bot.outbox() if m["To"] == "jan@klient.pl"] == ["jan@klient.pl"]
