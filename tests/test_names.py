"""Names a sender controls, shown to staff: display names, requester addresses, file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import main
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


# -- attachment names ----------------------------------------------------------------------

HOSTILE_FILES = [
    # (name as the sender wrote it in Content-Disposition, name agents see)
    ('filename="../../../../tmp/PWNED"', "PWNED"),
    ("filename*=utf-8''invoice%E2%80%AEgpj.exe", "invoicegpj.exe"),
    ("filename*=utf-8''faktura.pdf%E2%80%A8-%20umowa.pdf", "faktura.pdf - umowa.pdf"),
    ('filename="=?utf-8?q?C:=5CUsers=5Cjan=5C..=5CCON.txt?="', "_CON.txt"),
]


def mail_with_files() -> bytes:
    """Outlook's multipart/mixed with the hostile names above, each a small PDF."""
    parts = "".join(
        "--_004_DB9PR02MB7164_\r\n"
        f'Content-Type: application/pdf; name="plik{n}.pdf"\r\n'
        f"Content-Disposition: attachment; {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "JVBERi0xLjQK\r\n"
        for n, (disposition, _) in enumerate(HOSTILE_FILES)
    )
    return (
        "From: Jan Kowalski <jan@klient.pl>\r\n"
        "To: pomoc@4dustry.com\r\n"
        "Subject: Faktury\r\n"
        "Date: Mon, 30 Nov 2026 11:00:00 +0100\r\n"
        "Message-ID: <DB9PR02MB71640F1E2D3C4B5A69788796A5B4C3D2@DB9PR02MB7164.eurprd02.prod"
        ".outlook.com>\r\n"
        'Content-Type: multipart/mixed; boundary="_004_DB9PR02MB7164_"\r\n'
        "MIME-Version: 1.0\r\n\r\n"
        "--_004_DB9PR02MB7164_\r\n"
        'Content-Type: text/plain; charset="iso-8859-2"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "W za=B3=B1czeniu faktury.\r\n\r\n" + parts + "--_004_DB9PR02MB7164_--\r\n"
    ).encode()


def test_agents_see_and_get_files_under_safe_names(bot) -> None:
    bot.deliver(mail_with_files(), now=WARSAW_NOON)
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    listed = [
        line[2:].rsplit(" (", 1)[0] for line in body_of(note).splitlines() if line[:2] == "- "
    ]
    assert listed == [shown for _, shown in HOSTILE_FILES]
    # The files carried to the agent, as their mail client will save them: the raw bytes.
    [raw] = [
        p.read_bytes()
        for p in (bot.cfg.outbound.path / "new").iterdir()
        if b"To: anna@4dustry.com" in p.read_bytes()
    ]
    for _, shown in HOSTILE_FILES:
        assert f'filename="{shown}"'.encode() in raw or f"filename*=utf-8''{shown}".encode() in raw
    assert b"\xe2\x80\xae" not in raw and b"%E2%80%AE" not in raw and b"PWNED\r\n" not in raw
    assert b"../" not in raw and b"C:" not in raw


def test_attachment_out_directory_gets_the_shown_name_and_nothing_outside(
    bot, tmp_path: Path, capsys
) -> None:
    bot.deliver(mail_with_files(), now=WARSAW_NOON)
    config = tmp_path / "config.toml"
    out = tmp_path / "pobrane"
    out.mkdir()
    before = set(tmp_path.rglob("PWNED"))
    [first] = bot.ctx.store.rows("attachments", filename="PWNED")
    assert main(["--config", str(config), "attachment", str(first["id"]), "--out", str(out)]) == 0
    assert (out / "PWNED").read_bytes() == b"%PDF-1.4\n"
    assert set(tmp_path.rglob("PWNED")) - before == {out / "PWNED"}
    # Never over what is already there (a file, or a link planted to point elsewhere).
    assert main(["--config", str(config), "attachment", str(first["id"]), "--out", str(out)]) == 1
    assert "File exists" in capsys.readouterr().err
