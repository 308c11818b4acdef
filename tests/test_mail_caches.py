"""Header caches: per-message state that is not kept on the message, bounded thread-safe module
caches; one header-end pattern and one set of Polish letters."""

from __future__ import annotations

import copy
import email
import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from email import policy

import pytest

from mailbot import intake
from mailbot.mail import charsets, headers, limits
from mailbot.mail import parse as parse_module
from mailbot.mail.headers import address_specs, header_value, raw_index
from mailbot.mail.parse import parse
from mailbot.pipeline import classify


def mail(n: int) -> bytes:
    return (
        f"From: =?utf-8?Q?Pawe=C5=82_{n}?= <klient{n % 7}@firma{n % 3}.pl>\r\n"
        f"To: pomoc@4dustry.com, Anna <anna{n % 5}@4dustry.com>\r\n"
        f"Cc: biuro{n % 4}@firma.pl\r\n"
        f"Subject: =?utf-8?Q?Zam=C3=B3wienie_{n}?=\r\n"
        f"Message-ID: <{n}@firma.pl>\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset={('utf-8', 'iso-8859-2')[n % 2]}\r\n"
        "\r\n"
        f"Dzień dobry, zamówienie {n}.\r\n"
    ).encode()


def summary(raw: bytes) -> tuple[object, ...]:
    parsed = parse(raw)
    msg = parsed.message
    return (
        parsed.from_name,
        parsed.from_addr,
        parsed.to,
        parsed.cc,
        parsed.subject,
        parsed.text,
        address_specs(msg, "to"),
        header_value(msg, "content-type"),
        msg.get_content_type(),  # through the policy's header cache
    )


def test_nothing_is_stored_on_the_message() -> None:
    raw = mail(1)
    parsed = parse(raw)
    assert parsed.subject == "Zamówienie 1"
    assert parsed.cc == (("", "biuro1@firma.pl"),)
    bare = email.message_from_bytes(raw, policy=policy.default)
    assert set(vars(parsed.message)) == set(vars(bare))


def test_a_modified_copy_is_read_afresh() -> None:
    msg = parse(mail(2)).message
    assert header_value(msg, "subject") == "Zamówienie 2"
    clone = copy.deepcopy(msg)
    del clone["Subject"]
    clone["Subject"] = "Inny temat"
    assert header_value(clone, "subject") == "Inny temat"
    assert header_value(msg, "subject") == "Zamówienie 2"


def test_per_message_state_goes_with_the_message() -> None:
    gc.collect()
    before = len(headers._HEADERS)
    parsed = parse(mail(3))
    assert len(headers._HEADERS) > before
    del parsed
    gc.collect()
    assert len(headers._HEADERS) == before


def test_one_message_read_from_many_threads_has_one_index() -> None:
    msg = email.message_from_bytes(mail(4), policy=parse_module.POLICY)
    start = threading.Barrier(8)

    def read(_: int) -> tuple[int, str]:
        start.wait()
        return id(raw_index(msg)), header_value(msg, "subject")

    with ThreadPoolExecutor(8) as pool:
        seen = set(pool.map(read, range(8)))
    assert seen == {(id(raw_index(msg)), "Zamówienie 4")}


def test_parsing_in_threads_reads_what_parsing_in_one_does() -> None:
    raws = [mail(n) for n in range(300)]
    serial = [summary(raw) for raw in raws]
    parse_module._parse_header.cache_clear()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(summary, raws)) == serial


def test_the_header_object_cache_is_bounded_and_shared() -> None:
    assert parse_module._parse_header.cache_info().maxsize == 4096
    first, second = parse(mail(5)).message, parse(mail(7)).message
    # The same Content-Type value in two messages: one parsed header object for both.
    assert first["Content-Type"] is second["Content-Type"]
    assert first.get_content_charset() == "iso-8859-2"


def test_one_header_end_pattern() -> None:
    assert intake.HEADER_END_RE is limits.HEADER_END_RE
    assert parse_module.HEADER_END_RE is limits.HEADER_END_RE


def test_one_set_of_polish_letters() -> None:
    letters, signal = charsets.POLISH_LETTERS, classify.POLISH_SIGNAL_LETTERS
    assert letters == set("ąćęłńóśźżĄĆĘŁŃÓŚŹŻ")
    assert classify.POLISH_LETTERS is letters  # imported, not defined again
    assert signal == letters - {"ó", "Ó"}


@pytest.mark.parametrize(
    ("text", "default", "language"),
    [
        ("Invoice for Óscar Gómez, León", "en", "en"),  # ó alone: Spanish names, not Polish
        ("Factura pendiente: información del envío", "en", "en"),
        ("Zamówienie: błąd przy dostawie", "en", "pl"),
        ("Góra", "pl", "pl"),  # no signal at all: the default
    ],
)
def test_polish_letters_in_language_detection(text: str, default: str, language: str) -> None:
    assert classify.detect_language(text, ("pl", "en"), default)[0] == language
