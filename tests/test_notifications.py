"""What agents' notifications carry: the customer's files within the cap, the new text of a
follow-up with the original attached, the ticket's SLA state as it is now, and the story an
agent gets when a ticket is assigned to them."""

from __future__ import annotations

import base64
import email
import re
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.mail.compose import original_part
from tests.daemon_helpers import daemon_settings
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail
from tests.servers import SmtpSink
from tests.test_agents import ANNA, TOMASZ, gmail_reply, outlook_reply

CUSTOMER = "jan@klient.pl"
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # binary, ~10 kB
LOGO = b"\x89PNG\r\n\x1a\n" + b"\x00logo" * 300  # a 1.5 kB signature logo
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 300  # a 77 kB pasted screenshot
POLISH_PDF = "Faktura_zamówienie_ąę.pdf"


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


OUTLOOK_TEXT = (
    "Dzień dobry,\n\nw załączniku faktura do zamówienia 4411. Proszę o korektę NIP.\n\n"
    "Pozdrawiam\nJan Kowalski\n[cid:image001.png@01DB4C1A.6F1E2B30]\n"
)
OUTLOOK_HTML = (
    "<html><body><p>Dzień dobry,</p><p>w załączniku faktura.</p>"
    '<img src="cid:image001.png@01DB4C1A.6F1E2B30"></body></html>'
)


def outlook_with_pdf_and_logo(*, screenshot: bool = False) -> bytes:
    """Outlook desktop: related/alternative body, image001.png in the signature (and a pasted
    screenshot as image002.png), a PDF whose Polish name is RFC 2047-encoded as Outlook does."""
    name = "=?utf-8?B?" + base64.b64encode(POLISH_PDF.encode()).decode() + "?="
    shot = (
        f"""--_004_related_
Content-Type: image/png; name="image002.png"
Content-Description: image002.png
Content-Disposition: inline; filename="image002.png"; size={len(SCREENSHOT)}
Content-ID: <image002.png@01DB4C1A.6F1E2B30>
Content-Transfer-Encoding: base64

{_b64(SCREENSHOT)}
"""
        if screenshot
        else ""
    )
    return _crlf(
        f"""From: Jan Kowalski <jan@klient.pl>
To: "pomoc@4dustry.com" <pomoc@4dustry.com>
Subject: Faktura do zamówienia 4411
Thread-Topic: Faktura do zamówienia 4411
Thread-Index: AdtEzX1ab2c3d4e5f6g7h8i9j0k==
Date: Mon, 30 Nov 2026 10:00:00 +0000
Message-ID: <DB9P190MB1234567890ABCDEF1234567890AB@DB9P190MB1234.EURP190.PROD.OUTLOOK.COM>
Accept-Language: pl-PL, en-US
Content-Language: pl-PL
X-MS-Has-Attach: yes
Content-Type: multipart/mixed;
\tboundary="_005_mixed_"
MIME-Version: 1.0

--_005_mixed_
Content-Type: multipart/related;
\tboundary="_004_related_";
\ttype="multipart/alternative"

--_004_related_
Content-Type: multipart/alternative;
\tboundary="_000_alt_"

--_000_alt_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

{_b64(OUTLOOK_TEXT.encode())}
--_000_alt_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: base64

{_b64(OUTLOOK_HTML.encode())}
--_000_alt_--

--_004_related_
Content-Type: image/png; name="image001.png"
Content-Description: image001.png
Content-Disposition: inline; filename="image001.png"; size={len(LOGO)}
Content-ID: <image001.png@01DB4C1A.6F1E2B30>
Content-Transfer-Encoding: base64

{_b64(LOGO)}
{shot}--_004_related_--

--_005_mixed_
Content-Type: application/pdf; name="{name}"
Content-Description: {name}
Content-Disposition: attachment; filename="{name}"; size={len(PDF)}
Content-Transfer-Encoding: base64

{_b64(PDF)}
--_005_mixed_--
"""
    )


def gmail_with_two(first: bytes, second: bytes, *, subject: str = "Reklamacja dostawy") -> bytes:
    """Gmail: mixed > alternative, each attachment with name=, filename= and an X-Attachment-Id."""
    return _crlf(
        f"""MIME-Version: 1.0
Date: Mon, 30 Nov 2026 11:00:00 +0100
Message-ID: <CAKx9mQ2b+Vz0Rr7pV_8sYk3nQz=Fh5Lw@mail.gmail.com>
Subject: {subject}
From: Ewa Zielinska <ewa.zielinska@gmail.com>
To: pomoc@4dustry.com
Content-Type: multipart/mixed; boundary="000000000000a1b2c3d4e5f6a7b8"

--000000000000a1b2c3d4e5f6a7b8
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f6a7b6"

--000000000000a1b2c3d4e5f6a7b6
Content-Type: text/plain; charset="UTF-8"

Dzien dobry, w zalaczeniu zdjecia uszkodzonej paczki.

--000000000000a1b2c3d4e5f6a7b6
Content-Type: text/html; charset="UTF-8"

<div dir="ltr">Dzien dobry, w zalaczeniu zdjecia uszkodzonej paczki.</div>

--000000000000a1b2c3d4e5f6a7b6--
--000000000000a1b2c3d4e5f6a7b8
Content-Type: image/jpeg; name="paczka.jpg"
Content-Disposition: attachment; filename="paczka.jpg"
Content-Transfer-Encoding: base64
Content-ID: <f_m3k2j1h0>
X-Attachment-Id: f_m3k2j1h0

{_b64(first)}
--000000000000a1b2c3d4e5f6a7b8
Content-Type: application/pdf; name="protokol.pdf"
Content-Disposition: attachment; filename="protokol.pdf"
Content-Transfer-Encoding: base64
Content-ID: <f_m3k2j1h1>
X-Attachment-Id: f_m3k2j1h1

{_b64(second)}
--000000000000a1b2c3d4e5f6a7b8--
"""
    )


def apple_attachment_only(**headers: str) -> bytes:
    """Apple Mail with nothing typed: the file (RFC 2231 name) and an empty text part."""
    quoted = "".join(f"%{b:02X}" if b > 127 else chr(b) for b in POLISH_PDF.encode())
    subject = headers.pop("Subject", "Faktura")
    extra = "".join(f"{k}: {v}\n" for k, v in headers.items())
    return _crlf(
        f"""From: Jan Kowalski <jan@klient.pl>
Content-Type: multipart/mixed;
\tboundary="Apple-Mail=_5E2B7C1D-8A3F-4E6B-9C0D-1F2A3B4C5D6E"
Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3774.600.62\\))
Subject: {subject}
Date: Mon, 30 Nov 2026 11:00:00 +0100
Message-Id: <8F3A2B1C-4D5E-6F70-8192-A3B4C5D6E7F8@klient.pl>
To: pomoc@4dustry.com
X-Mailer: Apple Mail (2.3774.600.62)
{extra}
--Apple-Mail=_5E2B7C1D-8A3F-4E6B-9C0D-1F2A3B4C5D6E
Content-Disposition: attachment;
\tfilename*=utf-8''{quoted}
Content-Type: application/pdf;
\tx-unix-mode=0644;
\tname*=utf-8''{quoted}
Content-Transfer-Encoding: base64

{_b64(PDF)}
--Apple-Mail=_5E2B7C1D-8A3F-4E6B-9C0D-1F2A3B4C5D6E
Content-Transfer-Encoding: 7bit
Content-Type: text/plain;
\tcharset=us-ascii



--Apple-Mail=_5E2B7C1D-8A3F-4E6B-9C0D-1F2A3B4C5D6E--
"""
    )


def sent_files(bot: Mailbot) -> list[Path]:
    new = bot.cfg.outbound.path / "new"
    return sorted(new.iterdir(), key=lambda p: int(p.name.split(".")[0]))


def raw_to(bot: Mailbot, address: str, template_subject: str = "") -> list[bytes]:
    """The raw bytes on the wire of every mail to `address`, oldest first."""
    found = []
    for path in sent_files(bot):
        data = path.read_bytes()
        msg = email.message_from_bytes(data, policy=policy.default)
        if msg["To"] == address and template_subject in msg["Subject"]:
            found.append(data)
    return found


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def files_of(msg: EmailMessage) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_content()
        for part in msg.iter_attachments()
        if part.get_content_type() != "message/rfc822"
    }


def rfc822_body(data: bytes) -> tuple[bytes, bytes]:
    """(part headers, body bytes) of the message/rfc822 part, read from the wire bytes."""
    boundary = re.search(rb'boundary="([^"]+)"', data)
    assert boundary
    start = data.index(b"Content-Type: message/rfc822")
    head_end = data.index(b"\r\n\r\n", start)
    end = data.index(b"\r\n--" + boundary.group(1), head_end)
    return data[start:head_end], data[head_end + 4 : end]


def ids_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"mailbot attachment (\d+)", text)]


# -- files travel with the notification ---------------------------------------------------------


def test_outlook_pdf_with_a_polish_name_travels_byte_exact_but_the_logo_does_not(bot) -> None:
    bot.deliver(outlook_with_pdf_and_logo())
    note = parsed(raw_to(bot, "anna@4dustry.com")[0])  # no topic: every agent is told
    assert files_of(note) == {POLISH_PDF: PDF}  # the signature's image001.png stays behind
    text = body_of(note)
    assert f"- {POLISH_PDF} (10 kB)" in text and "- image001.png" not in text
    assert "nie dołączono" not in text and "original.eml" not in text  # a new ticket: no .eml
    assert "w załączniku faktura do zamówienia 4411" in text
    # The logo is still kept on the ticket, for `mailbot show`.
    assert {r["filename"] for r in bot.ctx.store.rows("attachments")} == {
        POLISH_PDF,
        "image001.png",
    }


def test_a_pasted_screenshot_is_carried_like_any_file(bot) -> None:
    bot.deliver(outlook_with_pdf_and_logo(screenshot=True))
    note = parsed(raw_to(bot, "anna@4dustry.com")[0])
    assert files_of(note) == {"image002.png": SCREENSHOT, POLISH_PDF: PDF}


def test_gmail_files_over_the_cap_are_named_with_the_command_that_gets_them(tmp_path) -> None:
    bot = Mailbot(tmp_path, settings={"notifications.attachments_max": '"1 MB"'})
    photo, protocol = b"\xff\xd8\xff\xe0" + b"j" * 699_996, b"%PDF" + b"p" * 599_996
    bot.deliver(gmail_with_two(photo, protocol))
    data = raw_to(bot, "anna@4dustry.com")[0]  # "dostawy" → logistics → Anna
    note = parsed(data)
    assert files_of(note) == {"paczka.jpg": photo}  # 700 kB fits, 600 kB more would not
    text = body_of(note)
    [protocol_id] = ids_in(text)
    assert f"- protokol.pdf (600 kB) – nie dołączono (mailbot attachment {protocol_id})" in text
    assert "- paczka.jpg (700 kB)\n" in text
    assert "nie zmieścił się w limicie 1 MB na powiadomienie" in text
    # The command named in the text gives the admin exactly the file that was left out.
    out = tmp_path / "protokol.pdf"
    assert (
        main(["--config", str(bot.cfg.path), "attachment", str(protocol_id), "--out", str(out)])
        == 0
    )
    assert out.read_bytes() == protocol
    bot.close()


def test_files_go_in_the_customers_order_each_that_still_fits(tmp_path) -> None:
    bot = Mailbot(tmp_path, settings={"notifications.attachments_max": '"100 kB"'})
    big, small = b"B" * 150_000, b"s" * 40_000
    bot.deliver(gmail_with_two(big, small))
    note = parsed(raw_to(bot, "anna@4dustry.com")[0])
    assert files_of(note) == {"protokol.pdf": small}  # the first is too big, the second fits
    text = body_of(note)
    assert "- paczka.jpg (150 kB) – nie dołączono" in text
    bot.close()


def test_english_notification_names_the_left_out_file(tmp_path) -> None:
    bot = Mailbot(
        tmp_path,
        settings={"notifications.attachments_max": '"0"', "mailbot.default_language": '"en"'},
    )
    bot.deliver(gmail_with_two(b"a" * 2000, b"b" * 3000))
    text = body_of(parsed(raw_to(bot, "anna@4dustry.com")[0]))
    first, second = ids_in(text)
    assert f"- paczka.jpg (2 kB) – not attached (mailbot attachment {first})" in text
    assert f"- protokol.pdf (3 kB) – not attached (mailbot attachment {second})" in text
    assert 'Files marked "not attached" did not fit the 0 B limit per notification.' in text
    bot.close()


def test_apple_mail_attachment_only_is_not_an_empty_notification(bot) -> None:
    bot.deliver(apple_attachment_only())
    [note] = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"]
    assert files_of(note) == {POLISH_PDF: PDF}  # the RFC 2231 name decoded
    text = body_of(note)
    assert text.rstrip().endswith(
        "----- wiadomość klienta -----\n(wiadomość bez tekstu; 1 załącznik)"
    )


# -- follow-ups: the new text, and the original as it arrived -----------------------------------


def _ack_and_outlook_follow_up(bot: Mailbot, *, cte: str, sink: SmtpSink | None = None) -> bytes:
    """Jan's ticket, then his Outlook reply to our ack quoting it whole."""
    first = make_mail(subject="Brak dostawy komponentów", body="Gdzie jest moja dostawa 4411?")
    bot.deliver(first)
    sent = [d.message for d in sink.messages] if sink else bot.outbox()
    ack = next(m for m in sent if m["To"] == CUSTOMER)
    quoted = body_of(ack)
    text = (
        "Dzień dobry,\n\nnumer przesyłki to 0043 2211 9987. Proszę o pilny kontakt.\n\n"
        "Pozdrawiam\nJan Kowalski\n\n"
        "________________________________\n"
        "Od: 4Dustry <pomoc@4dustry.com>\n"
        "Wysłane: poniedziałek, 30 listopada 2026 11:00\n"
        "Do: Jan Kowalski <jan@klient.pl>\n"
        f"Temat: {ack['Subject']}\n\n{quoted}"
    )
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Jan Kowalski <jan@klient.pl>"
    msg["To"] = "pomoc@4dustry.com"
    msg["Subject"] = "ODP: " + ack["Subject"]
    msg["Date"] = "Mon, 30 Nov 2026 13:00:00 +0000"
    msg["Message-ID"] = (
        "<AM0PR09MB4321FEDCBA0987654321FEDCBA09@AM0PR09MB4321.eurprd09.prod.outlook.com>"
    )
    msg["In-Reply-To"] = ack["Message-ID"]
    msg["References"] = ack["Message-ID"]
    msg.set_content(text, cte=cte)
    raw = msg.as_bytes()
    bot.deliver(raw, now=WARSAW_NOON + timedelta(hours=3))
    return raw


@pytest.mark.parametrize(("cte", "expected_cte"), [("8bit", b"8bit"), ("base64", b"7bit")])
def test_follow_up_shows_the_new_text_and_carries_the_original_byte_exact(
    bot, cte: str, expected_cte: bytes
) -> None:
    raw = _ack_and_outlook_follow_up(bot, cte=cte)
    data = raw_to(bot, "anna@4dustry.com")[-1]
    note = parsed(data)
    text = body_of(note)
    assert "numer przesyłki to 0043 2211 9987" in text
    for leak in ("Zarejestrowaliśmy zgłoszenie", "Wysłane:", "Gdzie jest moja dostawa"):
        assert leak not in text  # our own ack and the rest of the quoted history
    assert "Cała wiadomość klienta, tak jak przyszła, jest w załączniku original.eml." in text
    headers, body = rfc822_body(data)
    assert body == raw  # the very bytes received
    assert b"Content-Transfer-Encoding: " + expected_cte in headers
    assert b'Content-Disposition: attachment; filename="original.eml"' in headers
    [original] = [p for p in note.iter_attachments() if p.get_content_type() == "message/rfc822"]
    assert original.get_filename() == "original.eml"
    inner = original.get_content()
    assert inner["Message-ID"] == parsed(raw)["Message-ID"]
    assert "Zarejestrowaliśmy zgłoszenie" in body_of(inner)  # what stripping removed is there
    assert bot.inbound(bot.ctx.store.rows("outbox")[-1]["original_inbound"])["raw"] == raw


@pytest.mark.parametrize("cap", ["10 MB", "12 kB"])
def test_attachment_only_follow_up_carries_the_file_then_the_original_if_it_fits(
    tmp_path, cap: str
) -> None:
    bot = Mailbot(tmp_path, settings={"notifications.attachments_max": f'"{cap}"'})
    bot.deliver(make_mail(subject="Faktura", message_id="<a1@klient.pl>"))
    follow_up = apple_attachment_only(
        Subject="Re: [4Dustry #1] Faktura", **{"In-Reply-To": "<a1@klient.pl>"}
    )
    inbound_id = bot.deliver(follow_up, now=WARSAW_NOON + timedelta(hours=1))
    data = raw_to(bot, "anna@4dustry.com")[-1]
    note = parsed(data)
    assert files_of(note) == {POLISH_PDF: PDF}  # the file first
    originals = [p for p in note.iter_attachments() if p.get_content_type() == "message/rfc822"]
    text = body_of(note)
    assert "(wiadomość bez nowego tekstu; 1 załącznik)" in text
    if cap == "10 MB":
        assert len(originals) == 1 and rfc822_body(data)[1] == follow_up
        assert "jest w załączniku original.eml" in text
    else:  # 10 kB of PDF leave no room for the 14 kB message
        assert not originals
        assert f"administrator pobierze ją poleceniem: mailbot raw {inbound_id}" in text
        out = tmp_path / "original.eml"
        args = ["--config", str(bot.cfg.path), "raw", str(inbound_id), "--out", str(out)]
        assert main(args) == 0 and out.read_bytes() == follow_up
    bot.close()


def test_a_reply_to_a_long_closed_ticket_shows_its_new_text_like_a_follow_up(bot) -> None:
    bot.deliver(make_mail(subject="Dostawa", body="Gdzie jest dostawa?"))
    bot.deliver(
        outlook_reply(notes_to_anna(bot)[0], ANNA, "#zamknij\n\nDostawa wyszła dziś."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    answer = [m for m in bot.outbox() if m["To"] == CUSTOMER][-1]
    quoted = "\n".join("> " + line for line in body_of(answer).splitlines())
    gmail = "W dniu pon., 30 lis 2026 o 12:00 4Dustry <pomoc@4dustry.com> napisał(a):"
    raw = make_mail(
        subject="Re: " + answer["Subject"],
        body=f"Znowu brakuje części.\n\n{gmail}\n{quoted}\n",
        headers={"In-Reply-To": answer["Message-ID"], "References": answer["Message-ID"]},
    )
    bot.deliver(raw, now=WARSAW_NOON + timedelta(days=30))
    data = next(d for d in raw_to(bot, "anna@4dustry.com", "[4Dustry #2]"))
    text = body_of(parsed(data))
    assert "Dalszy ciąg zamkniętego zgłoszenia #1." in text
    assert "Znowu brakuje części." in text and "Dostawa wyszła dziś" not in text
    assert rfc822_body(data)[1] == raw


def test_original_part_keeps_long_lines_safe_and_lf_mail_on_crlf() -> None:
    lf = b"From: a@b.pl\nSubject: x\n\nZa\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87\n"
    part, spliced = original_part(lf)
    assert spliced == lf.replace(b"\n", b"\r\n") and part["Content-Transfer-Encoding"] == "8bit"
    long_line = b"From: a@b.pl\r\nSubject: x\r\n\r\n" + b"x" * 2000 + b"\r\n"
    part, spliced = original_part(long_line)
    assert spliced is None and part.get_content_type() == "application/octet-stream"
    assert part.get_filename() == "original.eml" and part.get_content() == long_line


# -- the SLA state as it is now -----------------------------------------------------------------


def _answered_then_follow_up(bot: Mailbot) -> str:
    bot.deliver(make_mail(subject="Dostawa", body="Gdzie jest dostawa?"))
    bot.deliver(
        outlook_reply(notes_to_anna(bot)[-1], ANNA, "Dzień dobry,\n\nsprawdzam u przewoźnika."),
        now=WARSAW_NOON + timedelta(hours=1),
    )
    bot.deliver(
        make_mail(subject="Re: [4Dustry #1] Dostawa", body="Dziękuję, czekam."),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    return body_of(notes_to_anna(bot)[-1])


def notes_to_anna(bot: Mailbot) -> list[EmailMessage]:
    """Anna's new-ticket and follow-up notifications (not reminders), oldest first."""
    return [
        m
        for m in bot.outbox()
        if m["To"] == "anna@4dustry.com" and m["Subject"] == "[4Dustry #1] Dostawa"
    ]


def test_follow_up_after_an_answer_says_when_and_by_whom(bot) -> None:
    text = _answered_then_follow_up(bot)
    assert (
        "Pierwsza odpowiedź wysłana: poniedziałek, 30 listopada 2026, 12:00 (Anna Kowalska)" in text
    )
    assert "Termin pierwszej odpowiedzi" not in text
    assert "Status: otwarte" in text and "Przypisane do: Anna Kowalska" in text


def test_english_follow_up_after_an_answer(tmp_path) -> None:
    bot = Mailbot(tmp_path, settings={"mailbot.default_language": '"en"'})
    text = _answered_then_follow_up(bot)
    assert "First response sent: Monday, November 30, 2026, 12:00 (Anna Kowalska)" in text
    assert "First response due" not in text and "Assignee: Anna Kowalska" in text
    bot.close()


def test_follow_up_after_the_due_time_says_it_passed(bot) -> None:
    bot.deliver(make_mail(subject="Dostawa", body="Gdzie jest dostawa?"))
    new = body_of(notes_to_anna(bot)[0])
    assert "Termin pierwszej odpowiedzi: środa, 2 grudnia 2026, 11:00" in new
    bot.deliver(
        make_mail(subject="Re: [4Dustry #1] Dostawa", body="Nadal nic?"),
        now=WARSAW_NOON + timedelta(days=3),
    )
    text = body_of(notes_to_anna(bot)[-1])
    assert "Nadal nic?" in text
    assert "Termin pierwszej odpowiedzi minął: środa, 2 grudnia 2026, 11:00" in text


def test_a_page_after_the_answer_says_the_answer_went_out(bot) -> None:
    """The manager is paged when an agent raises the priority later: no stale due time."""
    bot.deliver(make_mail(sender="Piotr Lis <piotr@przyklad.pl>", subject="Dostawa", body="?"))
    note = notes_to_anna(bot)[0]
    bot.deliver(outlook_reply(note, ANNA, "Sprawdzam."), now=WARSAW_NOON + timedelta(hours=1))
    bot.deliver(
        outlook_reply(note, ANNA, "#priorytet pilny\n#notatka\nKlient dzwonił, linia stoi."),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    [page] = [m for m in bot.outbox() if m["To"] == "marta.wisniewska@4dustry.com"]
    text = body_of(page)
    assert (
        "Pierwsza odpowiedź wysłana: poniedziałek, 30 listopada 2026, 12:00 (Anna Kowalska)" in text
    )
    assert "Termin pierwszej odpowiedzi" not in text


# -- #przypisz: the new assignee hears, with the story so far -----------------------------------


def _assigned(bot: Mailbot, command: str) -> None:
    bot.deliver(
        make_mail(subject="Dostawa komponentów", body="Gdzie jest moja dostawa 4411?"),
    )
    bot.deliver(apple_attachment_only(Subject="Re: [4Dustry #1] Dostawa komponentów"),
                now=WARSAW_NOON + timedelta(minutes=30))  # fmt: skip
    note = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"][-1]
    bot.deliver(outlook_reply(note, ANNA, command), now=WARSAW_NOON + timedelta(hours=1))


def test_przypisz_sends_the_new_assignee_a_signed_story_whose_reply_reaches_the_customer(
    bot,
) -> None:
    _assigned(
        bot, "#przypisz tomasz\n\nDzień dobry,\n\nsprawą zajmie się kolega z działu reklamacji."
    )
    [story] = [m for m in bot.outbox() if m["To"] == "tomasz@4dustry.com"]
    assert story["Subject"] == "[4Dustry #1] Przypisano Ci zgłoszenie: Dostawa komponentów"
    text = body_of(story)
    assert "Anna Kowalska przekazuje Ci zgłoszenie #1 „Dostawa komponentów”." in text
    assert "Klient: Jan Kowalski <jan@klient.pl>" in text
    assert "Przypisane do: Tomasz Nowak" in text
    assert (
        "Pierwsza odpowiedź wysłana: poniedziałek, 30 listopada 2026, 12:00 (Anna Kowalska)" in text
    )
    history = text.split("----- historia zgłoszenia, od najstarszej wiadomości -----")[1]
    order = [
        history.index("Klient: Jan Kowalski\nGdzie jest moja dostawa 4411?"),
        history.index("Klient: Jan Kowalski\n(bez tekstu)"),
        history.index("Odpowiedź do klienta: Anna Kowalska\nDzień dobry,\n\nsprawą zajmie się"),
    ]
    assert order == sorted(order)
    assert "Zarejestrowaliśmy" not in history  # acks are not part of the story
    [file_id] = ids_in(text)
    assert f"- {POLISH_PDF} (10 kB, od {CUSTOMER}): mailbot attachment {file_id}" in text
    assert not list(story.iter_attachments())  # listed, not attached
    # Tomasz answers straight from the notification: the customer gets it, from the ticket.
    before = len([m for m in bot.outbox() if m["To"] == CUSTOMER])
    bot.deliver(
        gmail_reply(story, TOMASZ, "Dzień dobry,\n\nreklamację przyjąłem, korekta jutro."),
        now=WARSAW_NOON + timedelta(hours=2),
    )
    answers = [m for m in bot.outbox() if m["To"] == CUSTOMER]
    assert len(answers) == before + 1
    assert body_of(answers[-1]).startswith("Dzień dobry,\n\nreklamację przyjąłem, korekta jutro.")
    assert str(answers[-1]["From"]) == "Tomasz | 4Dustry <pomoc@4dustry.com>"
    assert "Przypisano Ci" not in body_of(answers[-1])


def test_assignment_with_a_note_marks_it_internal(bot) -> None:
    _assigned(bot, "#notatka\n#przypisz Tomasz Nowak\nKlient dzwonił, to reklamacja.")
    [story] = [m for m in bot.outbox() if m["To"] == "tomasz@4dustry.com"]
    text = body_of(story)
    assert "Notatka (Anna Kowalska):\nKlient dzwonił, to reklamacja." in text
    assert "Notatka wewnętrzna: Anna Kowalska\nKlient dzwonił, to reklamacja." in text
    assert not [m for m in bot.outbox() if m["To"] == CUSTOMER and "reklamacja" in body_of(m)]


def test_assigning_to_oneself_sends_nothing_more(bot) -> None:
    _assigned(bot, "#przypisz anna\n\nSprawdzam.")
    assert not [m for m in bot.outbox() if "Przypisano Ci" in m["Subject"]]
    assert bot.tickets()[0]["assignee"] == "anna@4dustry.com"


def test_a_long_story_is_bounded_and_says_what_was_cut(bot) -> None:
    bot.deliver(make_mail(subject="Dostawa", body="Pierwsza wiadomość. " + "x" * 3000))
    for n in range(1, 13):
        bot.deliver(
            make_mail(subject="Re: [4Dustry #1] Dostawa", body=f"Przypomnienie numer {n}."),
            now=WARSAW_NOON + timedelta(minutes=n),
        )
    note = [m for m in bot.outbox() if m["To"] == "anna@4dustry.com"][-1]
    command = "#notatka\n#assign tomasz@4dustry.com\nPrzejmij, proszę."
    bot.deliver(outlook_reply(note, ANNA, command), now=WARSAW_NOON + timedelta(hours=1))
    text = body_of([m for m in bot.outbox() if m["To"] == "tomasz@4dustry.com"][-1])
    assert "Pierwsza wiadomość." in text and "[… skrócono; całość: mailbot show 1]" in text
    # 14 messages (the first, 12 reminders, the note): the first and the latest 9 are shown.
    assert "[… pominięto 4 wiadomości ze środka historii; całość: mailbot show 1]" in text
    assert "Przypomnienie numer 4." not in text and "Przypomnienie numer 5." in text
    assert "Przypomnienie numer 12." in text and len(text) < 8000


def test_an_8bit_original_goes_to_the_relay_as_8bitmime(tmp_path, smtp_sink) -> None:
    bot = Mailbot(tmp_path, settings=daemon_settings(smtp_sink))
    raw = _ack_and_outlook_follow_up(bot, cte="8bit", sink=smtp_sink)
    [delivery] = [
        d
        for d in smtp_sink.messages
        if d.rcpt_tos == ("anna@4dustry.com",) and b"message/rfc822" in d.raw
    ]
    assert "BODY=8BITMIME" in delivery.mail_options
    assert rfc822_body(delivery.raw)[1] == raw
    plain = next(d for d in smtp_sink.messages if d.rcpt_tos == (CUSTOMER,))
    assert "BODY=8BITMIME" not in plain.mail_options  # 7-bit mail is sent as it always was
    bot.close()


def test_show_names_the_ids_the_admin_commands_take(bot, capsys) -> None:
    inbound_id = bot.deliver(apple_attachment_only())
    config = str(bot.cfg.path)
    assert main(["--config", config, "show", "1"]) == 0
    out = capsys.readouterr().out
    [attachment_id] = [r["id"] for r in bot.ctx.store.rows("attachments")]
    assert f"[attachment {attachment_id}] {POLISH_PDF} ({len(PDF)} bytes)" in out
    assert f"(mailbot raw {inbound_id})" in out
    assert main(["--config", config, "raw", str(inbound_id)]) == 0
    assert capsys.readouterr().out.encode() == bot.inbound(inbound_id)["raw"]
    assert main(["--config", config, "attachment", "999"]) == 1
    assert main(["--config", config, "raw", "999"]) == 1
    assert "no inbound message 999" in capsys.readouterr().err


def test_unassigned_and_due_lines_stand_apart_in_every_staff_notice(bot) -> None:
    """A line ending in a template tag must keep its line break: 'NieprzypisaneTermin…' once
    reached agents."""
    bot.deliver(make_mail())
    text = body_of(bot.outbox()[-1])
    lines = text.splitlines()
    assert "Nieprzypisane" in lines
    assert any(line.startswith("Termin pierwszej odpowiedzi: ") for line in lines)
