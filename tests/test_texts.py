"""What customers and managers read (#12): the urgent route, due times people work at, the
queue notice, the manager's page and its headers on the wire, and thanks after #close."""

from __future__ import annotations

import email
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date

from mailbot import config as config_module
from mailbot.templates import when_phrase, zone_phrase
from mailbot.thanks import THANKS_PHRASES, THANKS_WORDS, ThanksRules, short_thanks
from tests.helpers import Mailbot, body_of, make_mail, write_config

WARSAW = ZoneInfo("Europe/Warsaw")
JAN = "Jan Kowalski <jan@klient.pl>"
JOHN = "John Smith <john.smith@example.com>"
EWA = "Ewa Nowak <ewa@przyklad.pl>"  # a customer of Marta Wiśniewska ([[managers]])
ANNA = "Anna Kowalska <anna@4dustry.com>"
MANAGER = "marta.wisniewska@4dustry.com"
POLISH_ROUTE = (
    "W pilnych sprawach prosimy o kontakt z opiekunem klienta. Dane kontaktowe opiekuna"
    " znajdą Państwo na swoim koncie w serwisie 4Dustry."
)
ENGLISH_ROUTE = (
    "For urgent matters, please contact your account manager. You will find their contact"
    " details in your 4Dustry account."
)


def warsaw(*args: int) -> datetime:
    return datetime(*args, tzinfo=WARSAW)


MON_10 = warsaw(2026, 11, 30, 10, 0)


def to(bot: Mailbot, address: str) -> list[EmailMessage]:
    return [m for m in bot.outbox() if m["To"] == address]


def raw_sent(bot: Mailbot, address: str) -> list[bytes]:
    """The bytes the transport wrote for mail to `address`, oldest first."""
    new = bot.cfg.outbound.path / "new"
    files = sorted(new.iterdir(), key=lambda p: int(p.name.split(".")[0]))
    raws = [p.read_bytes() for p in files]
    return [r for r in raws if email.message_from_bytes(r, policy=policy.default)["To"] == address]


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def english_mail(**kwargs: str) -> bytes:
    return make_mail(
        sender=kwargs.pop("sender", JOHN),
        subject=kwargs.pop("subject", "Delivery of components"),
        body=kwargs.pop(
            "body", "Hello, the delivery of our order has not arrived yet. Could you please check?"
        ),
        **kwargs,
    )


# -- 1. every ack gives the urgent route ---------------------------------------------------------


def test_ack_without_a_manager_gives_the_route_text_and_the_urgent_subject_words(bot) -> None:
    bot.deliver(make_mail(sender=JAN), now=MON_10)
    [ack] = to(bot, "jan@klient.pl")
    body = body_of(ack)
    assert POLISH_ROUTE in " ".join(body.split())
    # Two natural words of [urgent] keywords, not all six.
    assert "Nowe pilne sprawy prosimy zgłaszać ze słowem PILNE lub AWARIA w temacie" in body
    assert "PILNY" not in body and "ASAP" not in body


def test_english_ack_without_a_manager(bot) -> None:
    bot.deliver(english_mail(), now=MON_10)
    body = " ".join(body_of(to(bot, "john.smith@example.com")[0]).split())
    assert ENGLISH_ROUTE in body
    assert "When you report a new urgent matter, please put URGENT in the subject." in body
    assert "PILNE" not in body


def test_ack_with_a_manager_names_them_and_the_urgent_words(bot) -> None:
    bot.deliver(make_mail(sender=EWA), now=MON_10)
    body = body_of(to(bot, "ewa@przyklad.pl")[0])
    assert (
        "W pilnych sprawach prosimy o kontakt z opiekunem klienta:\n"
        "Marta Wiśniewska, tel. +48 600 100 200, marta.wisniewska@4dustry.com\n"
        "Nowe pilne sprawy prosimy zgłaszać ze słowem PILNE lub AWARIA w temacie wiadomości."
    ) in body
    assert "na swoim koncie" not in body  # the configured manager instead of the sentence


def test_route_text_and_keywords_come_from_the_config(tmp_path: Path) -> None:
    bot = Mailbot(
        tmp_path,
        settings={
            "urgent.route_text": '{ pl = "W pilnych sprawach: infolinia 22 100 20 30." }',
            "urgent.keywords": '["asap", "urgent"]',
        },
    )
    try:
        bot.deliver(make_mail(sender=JAN), now=MON_10)
        bot.deliver(english_mail(), now=MON_10)
        polish = body_of(to(bot, "jan@klient.pl")[0])
        assert "W pilnych sprawach: infolinia 22 100 20 30." in polish
        assert "ze słowem ASAP w temacie" in polish  # no Polish keyword configured
        english = " ".join(body_of(to(bot, "john.smith@example.com")[0]).split())
        assert ENGLISH_ROUTE in english  # a language left out keeps the built-in text
        assert "please put URGENT in the subject" in english
    finally:
        bot.close()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"pilne sprawy"', "[urgent] route_text: expected a table of texts per language"),
        ("{ pl = 3 }", "[urgent] route_text: pl: expected a non-empty text"),
        ('{ polski = "x" }', "[urgent] route_text: not a language code: 'polski'"),
    ],
)
def test_bad_route_text_is_a_config_problem(tmp_path: Path, value: str, problem: str) -> None:
    path = write_config(tmp_path, settings={"urgent.route_text": value})
    with pytest.raises(config_module.ConfigError) as caught:
        config_module.load(path)
    assert any(line.startswith(f"config.toml: {problem}") for line in caught.value.problems)


def queue_notice(bot, body: str) -> str:
    """The queue notice Jan gets for his second mail (a reply to the ack, an hour later)."""
    mid = make_msgid(domain="klient.pl")
    bot.deliver(make_mail(sender=JAN, message_id=mid), now=MON_10)
    [ack] = to(bot, "jan@klient.pl")
    bot.deliver(
        make_mail(
            sender=JAN,
            subject="Odp: " + ack["Subject"],
            body=body,
            headers={"In-Reply-To": ack["Message-ID"], "References": f"{mid} {ack['Message-ID']}"},
        ),
        now=MON_10 + timedelta(hours=1),
    )
    return body_of(to(bot, "jan@klient.pl")[-1])


def test_queue_notice_gives_the_urgent_route_too(bot) -> None:
    queued = queue_notice(bot, "Przesyłam numer przesyłki: 0012345678.")
    assert POLISH_ROUTE in " ".join(queued.split())
    assert "ze słowem PILNE lub AWARIA" in queued


# -- 2. due times people work at, with the zone ----------------------------------------------


def test_mail_at_night_is_promised_for_the_closing_time_not_the_night(bot) -> None:
    bot.deliver(make_mail(sender=JAN), now=warsaw(2026, 12, 1, 22, 20))  # Tuesday 22:20
    [ticket] = bot.tickets()
    due = datetime.fromisoformat(ticket["first_response_due"]).astimezone(WARSAW)
    assert due == warsaw(2026, 12, 3, 18, 0)  # Thursday 18:00, not Thursday 22:20
    body = body_of(to(bot, "jan@klient.pl")[0])
    assert (
        "Odpowiemy najpóźniej w czwartek, 3 grudnia 2026 r., do godz. 18:00 czasu polskiego."
        in (body)
    )
    assert "22:20" not in body
    # The agents' notification and the breach timer use the same due time.
    assert "czwartek, 3 grudnia 2026, 18:00" in body_of(to(bot, "anna@4dustry.com")[0])
    [breach] = bot.ctx.store.rows("timers", kind="sla_breach")
    assert datetime.fromisoformat(breach["due_at"]).astimezone(WARSAW) == due


def test_english_ack_gives_the_time_zone(bot) -> None:
    bot.deliver(english_mail(), now=warsaw(2026, 11, 28, 3, 0))  # Saturday 03:00
    body = body_of(to(bot, "john.smith@example.com")[0])
    assert (
        "We will reply by Tuesday, December 1, 2026, 18:00 (Warsaw time, CET) at the latest."
        in (body)
    )


def test_summer_time_is_named_cest(bot) -> None:
    bot.deliver(english_mail(), now=warsaw(2026, 3, 27, 20, 0))  # Friday CET, before the change
    body = body_of(to(bot, "john.smith@example.com")[0])
    assert "by Tuesday, March 31, 2026, 18:00 (Warsaw time, CEST)" in body


def test_contract_due_times_inside_hours_do_not_change(bot) -> None:
    bot.deliver(make_mail(sender=JAN), now=warsaw(2026, 11, 28, 9, 0))  # Saturday 09:00
    body = body_of(to(bot, "jan@klient.pl")[0])
    assert "najpóźniej w środę, 2 grudnia 2026 r., do godz. 09:00 czasu polskiego" in body


@pytest.mark.parametrize(
    ("day", "polish"),
    [
        (30, "w poniedziałek, 30 listopada 2026 r., o 09:20"),
        (1, "we wtorek, 1 grudnia 2026 r., o 09:20"),
        (2, "w środę, 2 grudnia 2026 r., o 09:20"),
        (3, "w czwartek, 3 grudnia 2026 r., o 09:20"),
        (4, "w piątek, 4 grudnia 2026 r., o 09:20"),
        (5, "w sobotę, 5 grudnia 2026 r., o 09:20"),
        (6, "w niedzielę, 6 grudnia 2026 r., o 09:20"),
    ],
)
def test_polish_day_names_after_w_are_in_the_accusative(day: int, polish: str) -> None:
    moment = warsaw(2026, 11 if day == 30 else 12, day, 9, 20)
    assert when_phrase(moment, "pl") == polish
    assert when_phrase(moment, "pl", deadline=True) == polish.replace("o 09:20", "do godz. 09:20")


def test_english_phrases_and_zones() -> None:
    winter, summer = warsaw(2026, 12, 2, 9, 20), warsaw(2026, 6, 3, 18, 0)
    assert when_phrase(winter, "en") == "on Wednesday, December 2, 2026, at 09:20"
    assert when_phrase(summer, "en", deadline=True) == "by Wednesday, June 3, 2026, 18:00"
    assert zone_phrase(winter, "en") == "Warsaw time, CET"
    assert zone_phrase(summer, "en") == "Warsaw time, CEST"
    assert zone_phrase(winter, "pl") == "czasu polskiego"
    assert zone_phrase(winter.astimezone(ZoneInfo("Asia/Dubai")), "en") == "Dubai time"


# -- 3. the Polish queue notice welcomes information -------------------------------------------


def test_polish_queue_notice_asks_for_no_reminders_but_welcomes_information(bot) -> None:
    queued = " ".join(queue_notice(bot, "W załączeniu numer faktury: FV/2026/11/123.").split())
    assert "Przypomnienia nie zmieniają miejsca w kolejce, więc nie trzeba ich wysyłać." in queued
    assert "np. numer przesyłki lub fakturę, prosimy je przesłać" in queued
    assert "Kolejne wiadomości nie zmieniają" not in queued
    assert "odpowiemy najpóźniej w środę, 2 grudnia 2026 r., do godz. 10:00" in queued


# -- 4. the manager's page, its grammar and its headers on the wire ------------------------------


def test_manager_page_reads_as_correct_polish(bot) -> None:
    bot.deliver(
        make_mail(sender=EWA, subject="PILNE: awaria linii produkcyjnej"),
        now=warsaw(2026, 12, 2, 9, 20),
    )
    [page] = to(bot, MANAGER)
    body = body_of(page)
    assert body.startswith("Dzień dobry,\n\n")
    assert (
        "Twój klient ewa@przyklad.pl ma pilną sprawę: zgłoszenie #1, przyjęte"
        " w środę, 2 grudnia 2026 r., o 09:20." in body
    )
    # "awaria" routes the ticket to the bugs topic: Tomasz, by name.
    assert "Zgłoszeniem zajmuje się zespół wsparcia: Tomasz Nowak (tomasz@4dustry.com)." in body
    assert "podniósł" not in body and "przyjęte środa" not in body


def test_page_after_an_agents_priority_names_the_agent(bot) -> None:
    bot.deliver(make_mail(sender=EWA, subject="Pytanie o fakturę"), now=MON_10)
    [note] = [m for m in to(bot, "anna@4dustry.com")]
    bot.deliver(
        make_mail(
            sender=ANNA,
            subject="Re: " + note["Subject"],
            body="#priorytet pilny\n#notatka",
            headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
        ),
        now=MON_10 + timedelta(minutes=5),
    )
    body = body_of(to(bot, MANAGER)[0])
    assert "Priorytet podniesiony przez: Anna Kowalska (anna@4dustry.com)." in body


def test_urgent_page_is_important_on_the_wire_and_never_bulk(bot) -> None:
    bot.deliver(make_mail(sender=EWA, subject="PILNE: awaria linii"), now=MON_10)
    [raw] = raw_sent(bot, MANAGER)
    headers = header_block(raw)
    assert "\r\nImportance: high\r\n" in headers
    assert "\r\nX-Priority: 1 (Highest)\r\n" in headers
    assert "\r\nPriority: urgent\r\n" in headers
    assert "\r\nAuto-Submitted: auto-generated\r\n" in headers  # responders stay quiet
    assert "\r\nX-Auto-Response-Suppress: All\r\n" in headers
    assert "Precedence" not in headers


def test_agent_notifications_are_not_bulk_and_acks_stay_auto_replies(bot) -> None:
    bot.deliver(make_mail(sender=JAN, subject="Pytanie o zamówienie"), now=MON_10)
    for agent in ("anna@4dustry.com", "tomasz@4dustry.com"):
        [raw] = raw_sent(bot, agent)
        headers = header_block(raw)
        assert "Precedence" not in headers and "Importance" not in headers
        assert "\r\nAuto-Submitted: auto-generated\r\n" in headers
    [ack] = raw_sent(bot, "jan@klient.pl")
    headers = header_block(ack)
    assert "\r\nPrecedence: auto_reply\r\n" in headers
    assert "\r\nAuto-Submitted: auto-replied\r\n" in headers
    assert "Importance" not in headers and "X-Priority" not in headers


# -- 5. thanks after #close ------------------------------------------------------------------------


def closed_ticket(bot: Mailbot) -> EmailMessage:
    """Jan's ticket, answered by Anna with #zamknij; returns the answer Jan received."""
    mid = make_msgid(domain="klient.pl")
    bot.deliver(make_mail(sender=JAN, subject="Dostawa komponentów", message_id=mid), now=MON_10)
    note = to(bot, "anna@4dustry.com")[0]
    bot.deliver(
        make_mail(
            sender=ANNA,
            subject="RE: " + note["Subject"],
            body="#zamknij\nDzień dobry,\n\nprzesyłka wyjechała dziś rano.\n\nAnna Kowalska",
            headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
        ),
        now=MON_10 + timedelta(hours=1),
    )
    assert bot.tickets()[0]["status"] == "closed"
    return to(bot, "jan@klient.pl")[-1]


def reply_to(answer: EmailMessage, body: str, sender: str = JAN, **kwargs: object) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = "pomoc@4dustry.com"
    msg["Subject"] = "Odp: " + answer["Subject"]
    msg["Date"] = format_datetime(MON_10 + timedelta(hours=2))
    msg["Message-ID"] = kwargs.get("message_id") or make_msgid(domain="klient.pl")  # type: ignore[assignment]
    msg["In-Reply-To"] = answer["Message-ID"]
    msg["References"] = answer["Message-ID"]
    msg.set_content(body)
    return msg


def outlook_polish(answer: EmailMessage, text: str) -> bytes:
    """Outlook desktop in Polish: new text on top, an unmarked header block, the history."""
    msg = reply_to(
        answer,
        f"{text}\n\n"
        "Od: Anna | 4Dustry <pomoc@4dustry.com>\n"
        "Wysłano: poniedziałek, 30 listopada 2026 11:00\n"
        "Do: Jan Kowalski <jan@klient.pl>\n"
        f"Temat: {answer['Subject']}\n\n{body_of(answer)}",
        message_id="<AM9PR01MB7123ABCD4567EF89A0B1C2D3E4F5A6B7C8D9@AM9PR01MB7123.eurprd01.prod.outlook.com>",
    )
    msg.replace_header("Subject", "ODP: " + answer["Subject"])
    msg["Thread-Index"] = "AQHbQ2VhZGVyOk1haWxib3Q="
    return msg.as_bytes()


def gmail_english(answer: EmailMessage, text: str) -> bytes:
    quoted = "\n".join("> " + line for line in body_of(answer).splitlines())
    msg = reply_to(
        answer,
        f"{text}\n\nOn Mon, Nov 30, 2026 at 11:00 AM Anna | 4Dustry <pomoc@4dustry.com> wrote:\n"
        f"{quoted}\n",
        sender=JAN,
        message_id="<CAF3q7Z9xK2mP1vN8rT5wY4bH6jL0dS3gQ7eU2cA9fR1iO5nM4k@mail.gmail.com>",
    )
    msg.replace_header("Subject", "Re: " + answer["Subject"])
    return msg.as_bytes()


def iphone(answer: EmailMessage, text: str, signature: str) -> bytes:
    quoted = "\n".join("> " + line for line in body_of(answer).splitlines())
    msg = reply_to(
        answer,
        f"{text}\n\n{signature}\n\n> Wiadomość napisana przez Anna | 4Dustry"
        f" <pomoc@4dustry.com> w dniu 30.11.2026, o godz. 11:00:\n>\n{quoted}\n",
        message_id="<5E2B1A9C-7D4F-4C3B-9A8E-1F2D3C4B5A69@klient.pl>",
    )
    return msg.as_bytes()


THANKS_REPLIES = [
    pytest.param(lambda a: outlook_polish(a, "Dziękuję bardzo!"), id="outlook-pl"),
    pytest.param(
        lambda a: outlook_polish(
            a,
            "Dzień dobry,\n\ndziękuję, już działa.\n\nPozdrawiam\nJan Kowalski\nKlient Sp. z o.o.",
        ),
        id="outlook-pl-signature",
    ),
    pytest.param(lambda a: gmail_english(a, "Thank you, that solved it"), id="gmail-en"),
    pytest.param(lambda a: gmail_english(a, "Thanks a lot!\n\nJan"), id="gmail-en-name"),
    pytest.param(lambda a: iphone(a, "Dzięki, pozdrawiam", "Wysłane z iPhone'a"), id="iphone-pl"),
    pytest.param(lambda a: iphone(a, "Thanks a lot!", "Sent from my iPhone"), id="iphone-en"),
]


@pytest.mark.parametrize("reply", THANKS_REPLIES)
def test_short_thanks_after_close_is_kept_without_reopening(bot, reply) -> None:
    answer = closed_ticket(bot)
    sent = len(bot.outbox())
    bot.deliver(reply(answer), now=MON_10 + timedelta(hours=2))
    [ticket] = bot.tickets()
    assert ticket["status"] == "closed" and ticket["closed_at"] is not None
    assert len(bot.outbox()) == sent  # no ack, no notification to anyone
    kept = bot.ctx.store.rows("messages", direction="in", kind="customer")
    assert len(kept) == 2  # the thank-you is on the ticket
    events = [r for r in bot.ctx.store.events.of_ticket(1) if r["kind"] == "thanks"]
    assert len(events) == 1
    assert "short thank-you" in events[0]["detail"] and "not reopened" in events[0]["detail"]
    assert not bot.ctx.store.rows("timers", kind="sla_breach", status="scheduled")


NOT_THANKS = [
    pytest.param(
        lambda a: outlook_polish(a, "Dziękuję, ale nadal nie działa."), id="outlook-still-broken"
    ),
    pytest.param(lambda a: gmail_english(a, "Thanks! One more question?"), id="gmail-question"),
    pytest.param(
        lambda a: iphone(a, "Dziękuję. Proszę jeszcze o korektę faktury.", "Wysłane z iPhone'a"),
        id="iphone-more",
    ),
]


@pytest.mark.parametrize("reply", NOT_THANKS)
def test_thanks_with_more_to_say_reopens_and_notifies(bot, reply) -> None:
    answer = closed_ticket(bot)
    bot.deliver(reply(answer), now=MON_10 + timedelta(hours=2))
    assert bot.tickets()[0]["status"] == "open"
    assert "Nowa wiadomość" in body_of(to(bot, "anna@4dustry.com")[-1])
    assert not [r for r in bot.ctx.store.events.of_ticket(1) if r["kind"] == "thanks"]


def test_thanks_with_an_attachment_reopens(bot) -> None:
    answer = closed_ticket(bot)
    msg = email.message_from_bytes(
        gmail_english(answer, "Thanks a lot!"), policy=policy.SMTP, _class=EmailMessage
    )
    msg.add_attachment(
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        maintype="application",
        subtype="pdf",
        filename="faktura.pdf",
    )
    bot.deliver(msg.as_bytes(), now=MON_10 + timedelta(hours=2))
    assert bot.tickets()[0]["status"] == "open"


def test_thanks_on_an_open_ticket_changes_nothing(bot) -> None:
    mid = make_msgid(domain="klient.pl")
    bot.deliver(make_mail(sender=JAN, message_id=mid), now=MON_10)
    [ack] = to(bot, "jan@klient.pl")
    notes = len(to(bot, "anna@4dustry.com"))
    bot.deliver(
        make_mail(
            sender=JAN,
            subject="Odp: " + ack["Subject"],
            body="Dziękuję bardzo!",
            headers={"In-Reply-To": ack["Message-ID"], "References": mid},
        ),
        now=MON_10 + timedelta(hours=1),
    )
    assert bot.tickets()[0]["status"] == "open"
    assert len(to(bot, "anna@4dustry.com")) == notes + 1  # agents hear of it as before
    assert not [r for r in bot.ctx.store.events.of_ticket(1) if r["kind"] == "thanks"]


def test_thanks_recognition_can_be_switched_off(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path, settings={"thanks.phrases": "[]"})
    try:
        answer = closed_ticket(bot)
        bot.deliver(gmail_english(answer, "Thanks a lot!"), now=MON_10 + timedelta(hours=2))
        assert bot.tickets()[0]["status"] == "open"
    finally:
        bot.close()


RULES = ThanksRules(THANKS_PHRASES, THANKS_WORDS, 25)


@pytest.mark.parametrize(
    "text",
    [
        "Dziękuję bardzo!",
        "Dzięki, pozdrawiam",
        "Thanks a lot!",
        "Thank you, that solved it",
        "DZIEKUJE BARDZO",
        "Hi Anna,\n\nthanks a lot!\n\nBest regards\nJohn Smith\nACME Ltd.\n+44 20 7946 0000",
        "Dzień dobry,\n\nserdecznie dziękuję za szybką pomoc. Wszystko działa.\n\n"
        "Z poważaniem\nJan",
    ],
)
def test_short_thanks_recognised(text: str) -> None:
    assert short_thanks(text, RULES, names=["Jan Kowalski", "Anna Kowalska", "John Smith"])


@pytest.mark.parametrize(
    "text",
    [
        "Dziękuję, ale nadal nie działa",
        "Thanks! One more question?",
        "Thanks, but the invoice is still wrong.",
        "Dziękuję!\n\nPozdrawiam\nJan\n\nPS. Faktura nadal jest błędna.",
        "Dziękuję, jest problem z logowaniem",
        "Faktura w załączniku.",
        "Dziękuję " + "bardzo " * 30,
        "",
    ],
)
def test_more_than_thanks_is_not_recognised(text: str) -> None:
    assert short_thanks(text, RULES, names=["Jan Kowalski"]) is None


def test_attachments_are_never_a_short_thanks() -> None:
    assert short_thanks("Dziękuję bardzo!", RULES, attachments=1) is None


# -- 6. Polish staff notices -----------------------------------------------------------------------


def test_polish_sla_notices_speak_polish(bot) -> None:
    bot.deliver(make_mail(sender=JAN, subject="Dostawa komponentów"), now=MON_10)
    bot.run(now=warsaw(2026, 12, 1, 10, 0))  # one business day before the due time
    bot.run(now=warsaw(2026, 12, 2, 10, 0))  # the due time
    warning = next(m for m in to(bot, "anna@4dustry.com") if "Przypomnienie" in m["Subject"])
    assert warning["Subject"] == (
        "[4Dustry #1] Przypomnienie: termin odpowiedzi mija w środę, 2 grudnia 2026 r., o 10:00"
    )
    body = body_of(warning)
    assert "Priorytet: normalny | temat: logistyka | przypisane do: -" in body
    assert "zacznij odpowiedź od #czeka: zegar SLA zatrzyma się, dopóki klient nie odpisze" in (
        " ".join(body.split())
    )
    [breach] = to(bot, "kierownik@4dustry.com")
    body = body_of(breach)
    assert "nie otrzymało odpowiedzi w terminie" in body
    assert "Przyjęte: poniedziałek, 30 listopada 2026, 10:00" in body
    assert "Priorytet: normalny" in body and "urgent" not in body and "normal " not in body


def test_phrase_tables_agree_with_babel_every_day_of_two_years() -> None:
    for n in range(731):
        moment = warsaw(2026, 1, 1, 9, 5) + timedelta(days=n)
        polish = when_phrase(moment, "pl").split(", ")[1]
        assert polish == format_date(moment, "d MMMM y", locale="pl") + " r."
        english = when_phrase(moment, "en").removeprefix("on ").rsplit(", at", 1)[0]
        assert english == format_date(moment, "full", locale="en")
