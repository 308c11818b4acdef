"""What mail clients leave in a body: Outlook [cid:] placeholders, HTML blank lines, format=flowed.

Mail shaped as Outlook 365, Gmail, Apple Mail and Thunderbird send it; checked where people
read it: the agent's notification and the bytes sent to the customer.
"""

from __future__ import annotations

import email
import quopri
from datetime import timedelta
from email import policy
from email.header import Header
from email.message import EmailMessage

from mailbot.mail import flowed
from mailbot.mail.html import html_to_text
from mailbot.mail.parse import parse
from tests.helpers import WARSAW_NOON, Mailbot, body_of
from tests.test_agents import notification
from tests.test_commands import raw_to

LATER = WARSAW_NOON + timedelta(hours=1)
DATE = "Mon, 30 Nov 2026 11:05:12 +0100"


def encoded(subject: str) -> str:
    """A subject as clients put it on the wire: RFC 2047 when it is not ASCII."""
    return Header(subject, "utf-8").encode() if not subject.isascii() else subject


def qp(text: str) -> str:
    """Quoted-printable UTF-8 with CRLF lines, as clients write it (trailing spaces as =20)."""
    return quopri.encodestring(text.replace("\n", "\r\n").encode("utf-8")).decode("ascii")


def outlook_365(sender: str, subject: str, plain: str, html: str, headers: str = "") -> bytes:
    """Outlook / Microsoft 365: multipart/alternative, plain part with [cid:] placeholders."""
    return f"""\
From: {sender}
To: "pomoc@4dustry.com" <pomoc@4dustry.com>
Subject: {encoded(subject)}
Thread-Topic: {encoded(subject)}
Thread-Index: AdtKK1w9bXJ0c3RhbmRhcmQ=
Date: {DATE}
Message-ID: <DB9P190MB16587E3C1F2A4B5C6D7E8F90A1B2C3D4@DB9P190MB1658.EURP190.PROD.OUTLOOK.COM>
{headers}Accept-Language: pl-PL, en-US
Content-Language: pl-PL
X-MS-Has-Attach: yes
Content-Type: multipart/alternative;
\tboundary="_000_DB9P190MB16587E3C1F2A4B5C6D7E8F90A1B2C3D4DB9P190MB1658EURP_"
MIME-Version: 1.0

--_000_DB9P190MB16587E3C1F2A4B5C6D7E8F90A1B2C3D4DB9P190MB1658EURP_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

{qp(plain)}
--_000_DB9P190MB16587E3C1F2A4B5C6D7E8F90A1B2C3D4DB9P190MB1658EURP_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

{qp(html)}
--_000_DB9P190MB16587E3C1F2A4B5C6D7E8F90A1B2C3D4DB9P190MB1658EURP_--
""".replace("\n", "\r\n").encode("ascii")


def html_only(sender: str, subject: str, html: str, message_id: str, headers: str = "") -> bytes:
    """An HTML-only message (Outlook on the web, Gmail with plain text off, mobile clients)."""
    return f"""\
From: {sender}
To: pomoc@4dustry.com
Subject: {encoded(subject)}
Date: {DATE}
Message-ID: {message_id}
{headers}MIME-Version: 1.0
Content-Type: text/html; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

{qp(html)}
""".replace("\n", "\r\n").encode("ascii")


def flowed_mail(
    sender: str, subject: str, text: str, message_id: str, delsp: bool, headers: str = ""
) -> bytes:
    """Apple Mail (DelSp=yes) or Thunderbird (DelSp=no) plain text, format=flowed."""
    params = "; format=flowed" + ("; delsp=yes" if delsp else "")
    return f"""\
From: {sender}
To: pomoc@4dustry.com
Subject: {encoded(subject)}
Date: {DATE}
Message-ID: {message_id}
{headers}MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8{params}
Content-Transfer-Encoding: quoted-printable

{qp(text)}
""".replace("\n", "\r\n").encode("ascii")


def reply_headers(note: EmailMessage) -> str:
    return f"In-Reply-To: {note['Message-ID']}\nReferences: {note['Message-ID']}\n"


def customer_answer(bot: Mailbot) -> str:
    """The agent's answer as the customer's client shows it, from the bytes sent."""
    raw = raw_to(bot, "jan@klient.pl")[-1]
    assert b"[cid:" not in raw
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"].startswith("Re: ")
    return body_of(msg)


OUTLOOK_PLAIN = """\
Dzień dobry,

przesyłka z komponentami nie dotarła do naszego magazynu.

Pozdrawiam
Jan Kowalski
[cid:image001.png@01DB4A2B.5C3D6E70]
Kierownik zakupów | Klient Sp. z o.o. [cid:image002.png@01DB4A2B.5C3D6E70]
"""
OUTLOOK_HTML = """\
<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<style><!-- p.MsoNormal {margin:0cm;font-size:11.0pt;font-family:"Calibri",sans-serif;} --></style>
</head><body lang="PL" link="#0563C1" vlink="#954F72" style="word-wrap:break-word">
<div class="WordSection1">
<p class="MsoNormal">Dzień dobry,<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">przesyłka z komponentami nie dotarła do naszego magazynu.<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">Pozdrawiam<o:p></o:p></p>
<p class="MsoNormal">Jan Kowalski<o:p></o:p></p>
<p class="MsoNormal"><img width="120" height="40" src="cid:image001.png@01DB4A2B.5C3D6E70"></p>
</div></body></html>
"""


def test_outlook_cid_placeholders_never_reach_the_agent(bot) -> None:
    bot.deliver(
        outlook_365("Jan Kowalski <jan@klient.pl>", "Brak dostawy", OUTLOOK_PLAIN, OUTLOOK_HTML)
    )
    text = body_of(notification(bot))
    assert "[cid:" not in text
    assert text.endswith(
        "Pozdrawiam\nJan Kowalski\nKierownik zakupów | Klient Sp. z o.o.\n"
    )  # the line of the logo went, the text beside the second one stayed


def test_outlook_365_agent_reply_reaches_the_customer_without_placeholders(bot) -> None:
    bot.deliver(
        outlook_365("Jan Kowalski <jan@klient.pl>", "Brak dostawy", OUTLOOK_PLAIN, OUTLOOK_HTML)
    )
    note = notification(bot)
    plain = (
        "Dzień dobry,\n\nprzesyłka wyjdzie jutro.\n\nPozdrawiam\nAnna Kowalska\n"
        "[cid:image001.png@01DB4A2C.1A2B3C40]\n\n"
        f"Od: 4Dustry <pomoc@4dustry.com>\nWysłano: poniedziałek, 30 listopada 2026 11:05\n"
        f"Do: Anna Kowalska <anna@4dustry.com>\nTemat: {note['Subject']}\n\n{body_of(note)}"
    )
    html = (
        '<html><body><div class="WordSection1">'
        '<p class="MsoNormal">Dzień dobry,<o:p></o:p></p><p class="MsoNormal"><o:p>&nbsp;</o:p></p>'
        '<p class="MsoNormal">przesyłka wyjdzie jutro.<o:p></o:p></p></div></body></html>'
    )
    raw = outlook_365(
        "Anna Kowalska <anna@4dustry.com>",
        "Odp: " + note["Subject"],
        plain,
        html,
        reply_headers(note),
    )
    bot.deliver(raw, now=LATER)
    assert customer_answer(bot).startswith(
        "Dzień dobry,\n\nprzesyłka wyjdzie jutro.\n\nPozdrawiam\nAnna Kowalska\n\n"
    )


OUTLOOK_HTML_ONLY_REPLY = """\
<html><head><style>p.MsoNormal, li.MsoNormal, div.MsoNormal {{margin:0cm;}}</style></head>
<body lang="PL"><div class="WordSection1">
<p class="MsoNormal">Dzień dobry,<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">paczka została nadana dziś rano.<o:p></o:p></p>
<p class="MsoNormal">Numer listu przewozowego: 1234567890.<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">Pozdrawiam<o:p></o:p></p>
<p class="MsoNormal">Anna<o:p></o:p></p>
<div><br></div><div><br></div>
<div style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm">
<p class="MsoNormal"><b>Od:</b> 4Dustry &lt;pomoc@4dustry.com&gt;<br>
<b>Wysłano:</b> poniedziałek, 30 listopada 2026 11:05<br>
<b>Do:</b> Anna Kowalska &lt;anna@4dustry.com&gt;<br><b>Temat:</b> {subject}<o:p></o:p></p>
</div><p class="MsoNormal">Nowe zgłoszenie #1<o:p></o:p></p></div></body></html>
"""


def test_outlook_html_only_reply_keeps_the_paragraphs_the_agent_saw(bot) -> None:
    bot.deliver(
        outlook_365("Jan Kowalski <jan@klient.pl>", "Brak dostawy", OUTLOOK_PLAIN, OUTLOOK_HTML)
    )
    note = notification(bot)
    html = OUTLOOK_HTML_ONLY_REPLY.format(subject=note["Subject"])
    raw = html_only(
        "Anna Kowalska <anna@4dustry.com>",
        "Odp: " + note["Subject"],
        html,
        "<AM0PR03MB5731B1C2D3E4F5A6B7C8D9E0F1A2B3C4@AM0PR03MB5731.eurprd03.prod.outlook.com>",
        reply_headers(note),
    )
    bot.deliver(raw, now=LATER)
    assert customer_answer(bot).startswith(
        "Dzień dobry,\n\npaczka została nadana dziś rano.\n"
        "Numer listu przewozowego: 1234567890.\n\nPozdrawiam\nAnna\n\n"
    )


GMAIL_HTML = (
    '<div dir="ltr">Dzień dobry,<div><br></div><div>nie mogę się zalogować do konta od wczoraj.'
    "</div><div>Komunikat: &quot;Nieprawidłowe hasło&quot;.</div><div><br></div><div><br></div>"
    "<div>Pozdrawiam,</div><div>Jan Kowalski</div><div><br></div></div>\r\n"
)


def test_gmail_html_only_mail_reads_as_its_paragraphs(bot) -> None:
    bot.deliver(
        html_only(
            "Jan Kowalski <jan@klient.pl>",
            "Problem z logowaniem",
            GMAIL_HTML,
            "<CAH+w=7ZkT2nq5XbV3dP0sRr8yLmA1cQe9uFgHj4kLm_x2Y6Wz@mail.gmail.com>",
        )
    )
    assert body_of(notification(bot, "tomasz@4dustry.com")).endswith(  # topic: registration
        "Dzień dobry,\n\nnie mogę się zalogować do konta od wczoraj.\n"
        'Komunikat: "Nieprawidłowe hasło".\n\nPozdrawiam,\nJan Kowalski\n'
    )


APPLE_FLOWED = (
    "Dzień dobry,\n\n"
    "zamówiliśmy 40 sztuk modułu sterującego, a w dostawie z 27 listopada  \n"
    "było tylko 25. Proszę o informację, kiedy przyjdzie reszta i czy  \n"
    "możemy liczyć na rabat.\n\n"
    "Pozdrawiam\nJan Kowalski\n\nWysłane z iPhone’a\n"
)


def test_apple_mail_format_flowed_delsp_is_rejoined(bot) -> None:
    raw = flowed_mail(
        "Jan Kowalski <jan@klient.pl>",
        "Niepełna dostawa",
        APPLE_FLOWED,  # DelSp=yes: "listopada" + the word's space + the space marking the break
        "<8F3C2A1B-4D5E-4F60-9A7B-1C2D3E4F5A6B@klient.pl>",
        delsp=True,
        headers="X-Mailer: iPhone Mail (22B91)\n",
    )
    bot.deliver(raw)
    assert (
        "zamówiliśmy 40 sztuk modułu sterującego, a w dostawie z 27 listopada było tylko 25. "
        "Proszę o informację, kiedy przyjdzie reszta i czy możemy liczyć na rabat.\n\n"
        "Pozdrawiam\nJan Kowalski\n"
    ) in body_of(notification(bot))


def test_thunderbird_format_flowed_agent_reply_reaches_the_customer_joined(bot) -> None:
    bot.deliver(
        outlook_365("Jan Kowalski <jan@klient.pl>", "Brak dostawy", OUTLOOK_PLAIN, OUTLOOK_HTML)
    )
    note = notification(bot)
    quoted = "\n".join(("> " + line).rstrip() for line in body_of(note).splitlines())
    text = (
        "Dzień dobry,\n\n"
        "sprawdziłam u przewoźnika: przesyłka utknęła w sortowni w Strykowie i \n"
        "zostanie doręczona jutro do 12:00. Numer listu przewozowego to \n"
        "1234567890.\n\n"
        "Pozdrawiam\nAnna\n\n"
        "W dniu 30.11.2026 o 11:05, 4Dustry pisze:\n"
        f"{quoted}\n"
    )
    raw = flowed_mail(
        "Anna Kowalska <anna@4dustry.com>",
        "Re: " + note["Subject"],
        text,
        "<c0ffee12-3456-4789-abcd-ef0123456789@4dustry.com>",
        delsp=False,
        headers=reply_headers(note) + "User-Agent: Mozilla Thunderbird\n",
    )
    bot.deliver(raw, now=LATER)
    assert customer_answer(bot).startswith(
        "Dzień dobry,\n\nsprawdziłam u przewoźnika: przesyłka utknęła w sortowni w Strykowie i "
        "zostanie doręczona jutro do 12:00. Numer listu przewozowego to 1234567890.\n\n"
        "Pozdrawiam\nAnna\n\n"
    )


def test_flowed_decoder_follows_rfc_3676() -> None:
    text = (
        "Długa linia \n"  # flowed
        "i jej koniec.\n"
        " >From stuffed\n"  # space-stuffed: the space goes, ">From" is text, not a quote
        "> cytat, który \n"
        "> trwa dalej\n"
        ">> głębszy \n"  # flowed, but the depth changes: the paragraph ends here
        "> płytszy\n"
        "-- \n"  # the signature separator is never flowed
        "Jan\n"
    )
    assert flowed.decode(text) == (
        "Długa linia i jej koniec.\n>From stuffed\n> cytat, który trwa dalej\n"
        ">> głębszy\n> płytszy\n-- \nJan\n"
    )
    assert flowed.decode("Dzie \nń dobry\n", delsp=True) == "Dzień dobry\n"


def test_fixed_text_stays_as_written_and_cid_placeholders_go() -> None:
    body = "Linia z trailing spacją \nnastępna\n[cid:logo] tekst\n\n[link](x)\n"
    msg = EmailMessage()
    msg["From"] = "jan@klient.pl"
    msg.set_content(body)
    text = parse(msg.as_bytes()).text
    assert text.startswith("Linia z trailing spacją \nnastępna\n")  # not format=flowed
    assert "[cid:logo]" not in text and " tekst\n\n[link](x)" in text


def test_html_blank_lines_collapse_but_paragraphs_stay() -> None:
    html = (
        "<p>Pierwszy akapit.</p><p>Drugi akapit.</p><div><br></div><div><br></div><div>Koniec</div>"
    )
    assert html_to_text(html) == "Pierwszy akapit.\n\nDrugi akapit.\n\nKoniec"
