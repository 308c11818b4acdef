"""Parsing real-world mail: charsets, encoded headers, HTML-only bodies, attachments."""

from __future__ import annotations

import pytest

from mailbot.attachments import safe_filename
from mailbot.mail.charsets import decode_bytes
from mailbot.mail.parse import Unparseable, parse

PANGRAM = "Zażółć gęślą jaźń"


def raw_mail(
    body: bytes,
    *,
    charset: str,
    subject: str = "Test",
    cte: str = "8bit",
    ctype: str = "text/plain",
) -> bytes:
    head = (
        "From: Jan <jan@klient.pl>\r\nTo: pomoc@4dustry.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <1@klient.pl>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}; charset={charset}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode("ascii") + body


@pytest.mark.parametrize("encoding", ["windows-1250", "iso-8859-2", "utf-8"])
def test_polish_body_in_each_charset(encoding: str) -> None:
    parsed = parse(raw_mail(PANGRAM.encode(encoding), charset=encoding))
    assert parsed.text.strip() == PANGRAM


@pytest.mark.parametrize(
    ("actual", "label"),
    [
        ("windows-1250", "iso-8859-1"),  # Outlook on a Polish Windows, mislabelled
        ("iso-8859-2", "windows-1252"),
        ("windows-1250", "iso-8859-2"),
        ("iso-8859-2", "windows-1250"),
        ("utf-8", "iso-8859-1"),
        ("windows-1250", "x-unknown"),
        ("utf-8", "uft-8"),
        ("windows-1250", '""'),
    ],
)
def test_mislabelled_and_unknown_charsets_give_no_mojibake(actual: str, label: str) -> None:
    parsed = parse(raw_mail(PANGRAM.encode(actual), charset=label))
    assert parsed.text.strip() == PANGRAM


def test_quoted_printable_windows_1250_body() -> None:
    body = b"Zg=B3oszenie: Za=BF=F3=B3=E6 g=EA=9Cl=B9 ja=9F=F1"
    parsed = parse(raw_mail(body, charset="windows-1250", cte="quoted-printable"))
    assert parsed.text.strip() == f"Zgłoszenie: {PANGRAM}"


@pytest.mark.parametrize(
    "subject",
    [
        "=?windows-1250?Q?Za=BF=F3=B3=E6_g=EA=9Cl=B9_ja=9F=F1?=",
        "=?ISO-8859-2?B?WmG/87PmIGfqtmyxIGphvPE=?=",
        "=?utf-8?B?WmHFvMOzxYLEhyBnxJnFm2zEhSBqYcW6xYQ=?=",
        "=?iso-8859-1?Q?Za=BF=F3=B3=E6_g=EA=9Cl=B9_ja=9F=F1?=",  # wrong label on 1250 bytes
    ],
)
def test_encoded_word_subjects(subject: str) -> None:
    parsed = parse(raw_mail(b"x", charset="us-ascii", subject=subject))
    assert parsed.subject == PANGRAM


def test_raw_8bit_header_in_windows_1250() -> None:
    raw = raw_mail(b"x", charset="us-ascii", subject="PLACEHOLDER")
    raw = raw.replace(b"PLACEHOLDER", PANGRAM.encode("windows-1250"))
    assert parse(raw).subject == PANGRAM


def test_encoded_display_name_and_addresses() -> None:
    raw = (
        b"From: =?utf-8?Q?Pawe=C5=82_Ma=C5=9Blak?= <Pawel@Firma.PL>\r\n"
        b"To: pomoc@4dustry.com, =?iso-8859-2?Q?Bo=BFena?= <bozena@firma.pl>\r\n"
        b"Cc: broken <<>>, ok@firma.pl\r\nSubject: x\r\n\r\nbody\r\n"
    )
    parsed = parse(raw)
    assert (parsed.from_name, parsed.from_addr) == ("Paweł Maślak", "pawel@firma.pl")
    assert ("Bożena", "bozena@firma.pl") in parsed.to
    assert ("", "ok@firma.pl") in parsed.cc


def test_html_only_mail_becomes_readable_text() -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body><p>Dzień dobry,</p>"
        "<p>nie działa <b>logowanie</b> do panelu.</p><script>alert(1)</script></body></html>"
    )
    parsed = parse(raw_mail(html.encode("utf-8"), charset="utf-8", ctype="text/html"))
    assert parsed.from_html
    assert "Dzień dobry," in parsed.text
    assert "nie działa logowanie do panelu." in parsed.text
    assert (
        "<p>" not in parsed.text and "alert" not in parsed.text and "color:red" not in parsed.text
    )


def test_plain_part_preferred_and_attachments_kept() -> None:
    raw = (
        b"From: jan@klient.pl\r\nTo: pomoc@4dustry.com\r\nSubject: faktura\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        b"--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
        b"--YY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nTekst\r\n"
        b"--YY\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML</p>\r\n--YY--\r\n"
        b"--XX\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment;"
        b" filename*=utf-8''faktura%20%C5%BC%C3%B3%C5%82ta.pdf\r\n\r\n"
        b"JVBERi0xLjQK\r\n--XX--\r\n"
    )
    parsed = parse(raw)
    assert parsed.text.strip() == "Tekst"
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("faktura żółta.pdf", "application/pdf", b"%PDF-1.4\n")
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("C:\\Windows\\evil.exe", "evil.exe"),
        ("faktura\u202egpj.exe", "fakturagpj.exe"),
        ("a\x00b.txt", "ab.txt"),
        ("", "attachment"),
        ("..", "attachment"),
    ],
)
def test_attachment_names_never_become_paths(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_long_attachment_names_keep_their_extension() -> None:
    name = safe_filename("x" * 4096 + ".pdf")
    assert len(name) <= 120 and name.endswith(".pdf")


def test_non_mail_is_unparseable() -> None:
    with pytest.raises(Unparseable):
        parse(b"\x00\x01")


def test_message_without_sender_parses_with_empty_address() -> None:
    parsed = parse(b"To: pomoc@4dustry.com\r\nSubject: x\r\n\r\nbody")
    assert parsed.from_addr == ""


def test_decode_bytes_keeps_other_languages_intact() -> None:
    assert decode_bytes("Grüße, Jürgen".encode("iso-8859-1"), "iso-8859-1") == "Grüße, Jürgen"
    assert decode_bytes("Привет".encode("koi8-r"), "koi8-r") == "Привет"
    assert decode_bytes("こんにちは".encode("iso-2022-jp"), "iso-2022-jp") == "こんにちは"
