"""The agents' digest: daily at opening on business days, once a day, and on #lista / #list."""

from __future__ import annotations

import email
import re
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.templates import plural
from tests.helpers import Mailbot, body_of, make_mail

ANNA = "Anna Kowalska <anna@4dustry.com>"
TOMASZ = "Tomasz Nowak <tomasz@4dustry.com>"
DIGEST_ON = {"notifications.digest": '"08:00"'}
# Warsaw is UTC+1 in winter: 08:00 local is 07:00 UTC.
TUE_0800 = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
GMAIL_ID = "<CAJ8r2kXq1Zp9vB3mW7tYc4Lr0eHn5sDfG6hJk2Qw8Ex=Tz_Ab@mail.gmail.com>"
# Outlook desktop on the company's Exchange server. (Exchange Online's 79-character IDs are
# mangled into encoded-words by compose on main at the time of writing: a separate fix.)
OUTLOOK_ID = "<5E3A1B2C4D5E6F708192A3B4C5D6E7F8@EXCH01.fabryka.local>"


# -- helpers -------------------------------------------------------------------------------------


def raw_sent(bot: Mailbot) -> list[bytes]:
    """The bytes of every sent message, oldest first, as the transport wrote them."""
    new = bot.cfg.outbound.path / "new"
    files = sorted(new.iterdir(), key=lambda p: int(p.name.split(".")[0])) if new.is_dir() else []
    return [p.read_bytes() for p in files]


def digests(bot: Mailbot, to: str | None = None) -> list[tuple[bytes, EmailMessage]]:
    """(raw bytes, parsed) of the digests sent so far, to `to` if given."""
    found = []
    for raw in raw_sent(bot):
        msg = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        if "Twoje zgłoszenia" in msg["Subject"] and (to is None or msg["To"] == to):
            found.append((raw, msg))
    return found


def header(raw: bytes, name: str) -> str:
    """One header's value as written on the wire (unfolded)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    for line in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == name.lower():
            return value.strip()
    raise AssertionError(f"no {name} header")


def ticket_order(text: str) -> list[int]:
    """Ticket numbers in the order the digest lists them."""
    return [int(n) for n in re.findall(r"(?m)^\d+\. \[4Dustry #(\d+)\] ", text)]


def reply_of(bot: Mailbot, to: str, subject_part: str) -> EmailMessage:
    return next(m for m in bot.outbox() if m["To"] == to and subject_part in m["Subject"])


def gmail_reply(note: EmailMessage, sender: str, text: str, message_id: str = GMAIL_ID) -> bytes:
    """An agent's reply from Gmail: text on top, the notification quoted with "> "."""
    quoted = "\n".join("> " + line for line in body_of(note).splitlines())
    return make_mail(
        sender=sender,
        subject="Re: " + note["Subject"],
        body=f"{text}\n\nOn Tue, Dec 1, 2026 at 9:12 AM 4Dustry <pomoc@4dustry.com> wrote:\n"
        f"{quoted}\n",
        message_id=message_id,
        headers={"In-Reply-To": note["Message-ID"], "References": note["Message-ID"]},
    )


def outlook_reply(note: EmailMessage, sender: str, text: str) -> bytes:
    """An agent's reply from Outlook (Polish UI): text, a signature, the notification below."""
    body = (
        f"{text}\n\nPozdrawiam\nAnna Kowalska\n4Dustry Sp. z o.o. | tel. +48 600 100 300\n\n"
        "________________________________\nOd: 4Dustry <pomoc@4dustry.com>\n"
        f"Wysłane: wtorek, 1 grudnia 2026 09:12\nDo: {sender}\nTemat: {note['Subject']}\n\n"
        f"{body_of(note)}"
    )
    return make_mail(
        sender=sender,
        subject="ODP: " + note["Subject"],
        body=body,
        message_id=OUTLOOK_ID,
        headers={
            "In-Reply-To": note["Message-ID"],
            "References": note["Message-ID"],
            "Thread-Topic": note["Subject"],
            "Thread-Index": "AQHZ1k2mJd7bT0X8S0uWmQ2v9hQ3Xw==",
            "X-MS-Has-Attach": "",
            "Content-Language": "pl-PL",
        },
    )


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """A 2026 moment given in UTC (Warsaw is one hour ahead in winter)."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def mixed_tickets(directory: Path) -> dict[str, int]:
    """Tickets of every kind a digest must tell apart, made with the digest off; their ids."""
    bot = Mailbot(directory)
    try:
        bot.deliver(  # no topic: every agent's; overdue since Mon 09:00
            make_mail(subject="Pytanie o fakturę", body="Proszę o korektę faktury 12/2026."),
            now=at(26, 8),
        )
        bot.deliver(  # bugs (Tomasz), answered by Tomasz and handed to Anna: hers, answered
            make_mail(
                sender="Piotr Zieliński <piotr@fabryka.pl>",
                subject="Crash aplikacji",
                body="Aplikacja zamyka się przy starcie.",
            ),
            now=at(27, 9),
        )
        note = reply_of(bot, "tomasz@4dustry.com", "#2]")
        bot.deliver(
            gmail_reply(
                note, TOMASZ, "#przypisz anna\n\nDzień dobry, sprawą zajmie się Anna.", "<t2@x>"
            ),
            now=at(27, 10),
        )
        bot.deliver(  # registration (Tomasz), assigned to Anna without an answer: hers, running
            make_mail(
                sender="Ola Wiśniewska <ola@sklep.pl>",
                subject="Rejestracja konta",
                body="Nie mogę dokończyć rejestracji.",
            ),
            now=at(30, 8, 30),
        )
        note = reply_of(bot, "tomasz@4dustry.com", "#3]")
        bot.deliver(gmail_reply(note, TOMASZ, "#przypisz anna", "<t3@x>"), now=at(30, 8, 40))
        bot.deliver(  # logistics (Anna), unassigned: hers, running, due later
            make_mail(
                sender="Ewa Nowak <ewa@firma.pl>",
                subject="Opóźniona dostawa",
                body="Gdzie jest moja dostawa?",
            ),
            now=at(30, 10),
        )
        bot.deliver(  # bugs (Tomasz), unassigned: not Anna's
            make_mail(
                sender="Marek Lis <marek@huta.pl>",
                subject="Błąd w raporcie",
                body="Raport pokazuje zły wynik.",
            ),
            now=at(30, 10, 10),
        )
        bot.deliver(  # logistics, answered and closed by Anna: nobody's
            make_mail(
                sender="Iza Kot <iza@magazyn.pl>",
                subject="Dostawa palet",
                body="Czy dostawa palet dotarła?",
            ),
            now=at(30, 10, 20),
        )
        note = reply_of(bot, "anna@4dustry.com", "#6]")
        bot.deliver(gmail_reply(note, ANNA, "#zamknij\n\nTak, dotarła.", "<a6@x>"), now=at(30, 11))
        assert [t["status"] for t in bot.tickets()] == ["open"] * 5 + ["closed"]
        assignees = [t["assignee"] for t in bot.tickets()]
        assert assignees[:5] == [None, "anna@4dustry.com", "anna@4dustry.com", None, None]
    finally:
        bot.close()
    return {"overdue": 1, "answered": 2, "assigned": 3, "topic": 4, "other_topic": 5, "closed": 6}


@pytest.fixture
def mixed(tmp_path: Path):
    ids = mixed_tickets(tmp_path)
    bot = Mailbot(tmp_path, settings=DIGEST_ON)  # the digest switched on: a restart
    yield bot, ids
    bot.close()


# -- the daily digest ----------------------------------------------------------------------------


def test_digest_at_eight_lists_the_agents_tickets_overdue_first(mixed) -> None:
    bot, ids = mixed
    before = len(raw_sent(bot))
    bot.run(TUE_0800 - timedelta(minutes=1))
    assert digests(bot) == [], "nothing before 08:00"
    bot.run(TUE_0800)
    assert len(raw_sent(bot)) == before + 2  # one per agent, nothing to customers
    [(raw, anna)] = digests(bot, "anna@4dustry.com")
    assert anna["Subject"] == "[4Dustry] Twoje zgłoszenia na dziś: 4 (1 po terminie)"
    assert header(raw, "Auto-Submitted") == "auto-generated"
    assert header(raw, "From") == "4Dustry <pomoc@4dustry.com>"
    assert header(raw, "Date") == "Tue, 01 Dec 2026 07:00:00 +0000"
    text = body_of(anna)
    # Overdue first; then by due time (Wed 09:30 before Wed 11:00); the answered one last.
    assert ticket_order(text) == [ids["overdue"], ids["assigned"], ids["topic"], ids["answered"]]
    assert "Masz 4 zgłoszenia do obsłużenia, w tym 1 po terminie pierwszej odpowiedzi." in text
    assert "Przypisane do Ciebie: 2, nieprzypisane: 2." in text
    assert "PO TERMINIE od 23 godzin (termin: poniedziałek, 30 listopada 2026, 09:00)" in text
    assert "Termin odpowiedzi: środa, 2 grudnia 2026, 09:30" in text
    assert "Klient: Ewa Nowak <ewa@firma.pl> · nieprzypisane (temat: logistics)" in text
    assert "Otwarte, po pierwszej odpowiedzi" in text
    assert "zgłoszone 4 dni temu" in text  # Thu 09:00 → Tue 08:00
    [(_, tomasz)] = digests(bot, "tomasz@4dustry.com")
    assert tomasz["Subject"] == "[4Dustry] Twoje zgłoszenia na dziś: 2 (1 po terminie)"
    assert ticket_order(body_of(tomasz)) == [ids["overdue"], ids["other_topic"]]


def test_digest_is_sent_once_a_day_across_restarts(mixed, tmp_path: Path) -> None:
    bot, _ = mixed
    bot.run(TUE_0800)
    assert len(digests(bot)) == 2
    bot.close()
    again = Mailbot(tmp_path, settings=DIGEST_ON)  # restarted at 09:30
    try:
        again.run(TUE_0800 + timedelta(hours=1, minutes=30))
        again.run(TUE_0800 + timedelta(hours=3))
        assert len(digests(again)) == 2
        again.run(TUE_0800 + timedelta(days=1))  # Wednesday 08:00: the next one
        assert len(digests(again, "anna@4dustry.com")) == 2
        fired = again.ctx.store.rows("timers", kind="agent_digest", status="fired")
        assert [r["due_at"] for r in fired] == [
            "2026-12-01T07:00:00+00:00",
            "2026-12-02T07:00:00+00:00",
        ]
    finally:
        again.close()


def test_a_daemon_started_late_sends_todays_digest_once_and_no_missed_ones(
    tmp_path: Path,
) -> None:
    mixed_tickets(tmp_path)
    bot = Mailbot(tmp_path, settings=DIGEST_ON)
    try:
        bot.run(TUE_0800)  # Tuesday's digest
        bot.close()
        # Down all Wednesday; started on Thursday at 09:30 local.
        bot = Mailbot(tmp_path, settings=DIGEST_ON)
        thursday = TUE_0800 + timedelta(days=2, hours=1, minutes=30)
        bot.run(thursday)
        bot.run(thursday + timedelta(minutes=5))
        anna = digests(bot, "anna@4dustry.com")
        assert len(anna) == 2  # Tuesday's and Thursday's only
        assert header(anna[-1][0], "Date") == "Thu, 03 Dec 2026 08:30:00 +0000"
        assert "Czwartek, 3 grudnia 2026" in body_of(anna[-1][1])
        # Started after closing time: that day's digest is not sent late; the next day's is.
        bot.close()
        bot = Mailbot(tmp_path, settings=DIGEST_ON)
        bot.run(datetime(2026, 12, 4, 17, 30, tzinfo=UTC))  # Friday 18:30 local
        assert len(digests(bot, "anna@4dustry.com")) == 2
        [timer] = bot.ctx.store.rows("timers", kind="agent_digest", status="scheduled")
        assert timer["due_at"] == "2026-12-07T07:00:00+00:00"  # Monday 08:00
    finally:
        bot.close()


def test_no_digest_on_saturday_or_on_polish_public_holidays(mixed) -> None:
    bot, _ = mixed
    calendar = bot.cfg.calendar
    # 24 December is a public holiday in Poland from 2025 on, like 25 and 26 December.
    assert not any(calendar.is_business_day(date(2026, 12, d)) for d in (24, 25, 26, 27))
    days_sent = []
    for day in range(1, 29):  # 08:00 local and once more at noon, every day of December
        for hour in (7, 11):
            bot.run(datetime(2026, 12, day, hour, tzinfo=UTC))
        now = len(digests(bot, "anna@4dustry.com"))
        if now > len(days_sent):
            days_sent.append(day)
        assert now == len(days_sent)
    assert days_sent == [d for d in range(1, 29) if calendar.is_business_day(date(2026, 12, d))]
    assert 5 not in days_sent and 6 not in days_sent  # Saturday, Sunday
    assert 24 not in days_sent and 25 not in days_sent and 28 in days_sent


def test_an_agent_who_opts_out_gets_no_digest(tmp_path: Path) -> None:
    mixed_tickets(tmp_path)
    ewa = '[[agents]]\nemail = "ewa@4dustry.com"\nname = "Ewa Zielińska"\ndigest = false\n'
    bot = Mailbot(tmp_path, extra=ewa, settings=DIGEST_ON)
    try:
        assert bot.cfg.agent("ewa@4dustry.com").digest is False
        bot.run(TUE_0800)
        assert {m["To"] for _, m in digests(bot)} == {"anna@4dustry.com", "tomasz@4dustry.com"}
        events = bot.ctx.store.rows("events", kind="digest")
        [event] = [e for e in events if "daily digest of" in e["detail"]]
        assert "opted out: ewa@4dustry.com" in event["detail"]
    finally:
        bot.close()


def test_digest_off_sends_nothing_and_an_empty_digest_is_not_sent(tmp_path: Path) -> None:
    mixed_tickets(tmp_path)
    bot = Mailbot(tmp_path)  # tests run with digest = "" unless they ask
    try:
        assert bot.cfg.notifications.digest is None
        bot.run(TUE_0800)
        assert digests(bot) == []
        assert bot.ctx.store.count("timers", kind="agent_digest") == 0
    finally:
        bot.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    bot = Mailbot(empty, settings=DIGEST_ON)
    try:
        bot.run(TUE_0800)
        assert raw_sent(bot) == []  # no tickets: nobody is sent an empty digest
        assert bot.ctx.store.count("timers", kind="agent_digest", status="fired") == 1
    finally:
        bot.close()


def test_digest_keeps_local_time_across_the_change_to_winter_time(tmp_path: Path) -> None:
    every_day = '["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'
    settings = {**DIGEST_ON, "hours.days": every_day}
    bot = Mailbot(tmp_path)
    try:
        bot.deliver(make_mail(subject="Pytanie"), now=datetime(2026, 10, 23, 9, tzinfo=UTC))
    finally:
        bot.close()
    bot = Mailbot(tmp_path, settings=settings)
    try:
        bot.run(datetime(2026, 10, 24, 6, 0, tzinfo=UTC))  # Saturday 08:00 CEST (UTC+2)
        assert len(digests(bot, "anna@4dustry.com")) == 1
        [timer] = bot.ctx.store.rows("timers", kind="agent_digest", status="scheduled")
        # Sunday 25 October: clocks go back at 03:00; 08:00 CET is 07:00 UTC.
        assert timer["due_at"] == "2026-10-25T07:00:00+00:00"
        bot.run(datetime(2026, 10, 25, 6, 30, tzinfo=UTC))  # 07:30 local: not yet
        assert len(digests(bot, "anna@4dustry.com")) == 1
        bot.run(datetime(2026, 10, 25, 7, 0, tzinfo=UTC))
        sent = digests(bot, "anna@4dustry.com")
        assert len(sent) == 2
        assert header(sent[-1][0], "Date") == "Sun, 25 Oct 2026 07:00:00 +0000"
    finally:
        bot.close()


def test_digest_time_follows_the_opening_hour_when_not_given(tmp_path: Path) -> None:
    from mailbot import config as config_module
    from tests.helpers import write_config

    path = write_config(tmp_path, settings={"hours.open": '"07:30"'})
    text = path.read_text(encoding="utf-8").replace('digest = ""\n', "", 1)
    path.write_text(text, encoding="utf-8")
    cfg = config_module.load(path)
    assert cfg.notifications.digest is not None
    assert cfg.notifications.digest.strftime("%H:%M") == "07:30"
    path.write_text(text.replace("[notifications]\n", '[notifications]\ndigest = "8"\n'))
    with pytest.raises(config_module.ConfigError, match=r"\[notifications\] digest: invalid"):
        config_module.load(path)


def test_a_long_digest_lists_fifty_and_counts_the_rest(tmp_path: Path) -> None:
    bot = Mailbot(tmp_path)
    try:
        for n in range(53):
            bot.feed(make_mail(subject=f"Pytanie {n}"), now=at(30, 9, n))
        bot.run(at(30, 10))
    finally:
        bot.close()
    bot = Mailbot(tmp_path, settings=DIGEST_ON)
    try:
        bot.run(TUE_0800)
        [(_, anna)] = digests(bot, "anna@4dustry.com")
        assert anna["Subject"] == "[4Dustry] Twoje zgłoszenia na dziś: 53"
        text = body_of(anna)
        assert ticket_order(text) == list(range(1, 51))  # by due time: oldest first
        assert "Mniej pilnych zgłoszeń nie wymieniono: jest ich jeszcze 3." in text
    finally:
        bot.close()


@pytest.mark.parametrize(
    ("count", "word"),
    [(1, "zgłoszenie"), (2, "zgłoszenia"), (4, "zgłoszenia"), (5, "zgłoszeń"), (12, "zgłoszeń"),
     (14, "zgłoszeń"), (22, "zgłoszenia"), (25, "zgłoszeń"), (112, "zgłoszeń"), (0, "zgłoszeń")],
)  # fmt: skip
def test_polish_plural_forms(count: int, word: str) -> None:
    assert plural(count, "pl", "zgłoszenie", "zgłoszenia", "zgłoszeń") == word
    assert plural(count, "en", "ticket", "tickets") == ("ticket" if count == 1 else "tickets")


# -- #lista on demand ----------------------------------------------------------------------------


def _customer_mail_count(bot: Mailbot) -> int:
    return sum(not r["to_addr"].endswith("@4dustry.com") for r in bot.ctx.store.rows("outbox"))


@pytest.mark.parametrize("client", ["gmail", "outlook"])
def test_lista_in_a_reply_answers_with_the_digest_and_changes_nothing(
    tmp_path: Path, client: str
) -> None:
    ids = mixed_tickets(tmp_path)
    bot = Mailbot(tmp_path)  # the daily digest off: #lista works regardless
    try:
        note = reply_of(bot, "anna@4dustry.com", f"#{ids['topic']}]")
        ticket_before = dict(bot.ctx.store.tickets.get(ids["topic"]))
        to_customers = _customer_mail_count(bot)
        raw = (gmail_reply if client == "gmail" else outlook_reply)(note, ANNA, "#lista")
        bot.deliver(raw, now=TUE_0800 + timedelta(hours=2))
        [(sent, answer)] = digests(bot, "anna@4dustry.com")
        assert answer["Subject"] == "[4Dustry] Twoje zgłoszenia: 4 (1 po terminie)"
        reply_id = GMAIL_ID if client == "gmail" else OUTLOOK_ID
        assert header(sent, "In-Reply-To").lower() == reply_id.lower()
        assert reply_id.lower() in header(sent, "References").lower()
        assert header(sent, "Auto-Submitted") == "auto-replied"
        assert ticket_order(body_of(answer)) == [
            ids["overdue"], ids["assigned"], ids["topic"], ids["answered"]
        ]  # fmt: skip
        assert _customer_mail_count(bot) == to_customers
        assert dict(bot.ctx.store.tickets.get(ids["topic"])) == ticket_before
        assert bot.ctx.store.count("events", kind="digest", ticket_id=ids["topic"]) == 1
    finally:
        bot.close()


def test_list_with_text_keeps_the_text_internal_and_applies_other_commands(bot) -> None:
    bot.deliver(make_mail(subject="Opóźniona dostawa", body="Gdzie jest moja dostawa?"))
    to_customers = _customer_mail_count(bot)
    note = reply_of(bot, "anna@4dustry.com", "#1]")
    text = "#list\n#przypisz anna\n\nKlient pyta o paczkę, sprawdzę jutro.\n\nAnna\n4Dustry"
    bot.deliver(gmail_reply(note, ANNA, text))
    assert _customer_mail_count(bot) == to_customers  # a request to mailbot: never to the customer
    [kept] = bot.ctx.store.rows("messages", kind="note")
    assert kept["text"].startswith("Klient pyta o paczkę")
    [(_, digest)] = digests(bot, "anna@4dustry.com")
    # The digest shows the ticket as this very mail leaves it: assigned to Anna, unanswered.
    assert digest["Subject"] == "[4Dustry] Twoje zgłoszenia: 1"
    assert "Przypisane do Ciebie: 1, nieprzypisane: 0." in body_of(digest)
    assert "Termin odpowiedzi: środa, 2 grudnia 2026, 11:00" in body_of(digest)


def test_lista_with_nothing_open_says_so(bot) -> None:
    bot.deliver(make_mail(subject="Opóźniona dostawa", body="Gdzie jest moja dostawa?"))
    note = reply_of(bot, "anna@4dustry.com", "#1]")
    bot.deliver(gmail_reply(note, ANNA, "#zamknij\n\nWysłane."))
    note = reply_of(bot, "anna@4dustry.com", "#1]")
    bot.deliver(gmail_reply(note, ANNA, "#lista", "<second@mail.gmail.com>"))
    [(_, digest)] = digests(bot, "anna@4dustry.com")
    assert digest["Subject"] == "[4Dustry] Twoje zgłoszenia: brak"
    assert "Nie masz otwartych zgłoszeń" in body_of(digest)


def test_lista_in_a_fresh_mail_needs_an_authenticated_agent(tmp_path: Path) -> None:
    mixed_tickets(tmp_path)
    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        tickets = bot.tickets()
        forged = make_mail(sender=ANNA, subject="#lista", body="")
        inbound = bot.deliver(forged, now=TUE_0800)
        assert digests(bot) == []
        assert bot.inbound(inbound)["status"] == "ignored"
        verified = make_mail(
            sender=ANNA,
            subject="#lista",
            body="Pozdrawiam\nAnna",
            message_id="<fresh@mail.gmail.com>",
            headers={
                "Authentication-Results": "mx.4dustry.com; spf=pass smtp.mailfrom=4dustry.com;"
                " dkim=pass header.d=4dustry.com; dmarc=pass (p=reject) header.from=4dustry.com"
            },
        )
        bot.deliver(verified, now=TUE_0800)
        [(raw, digest)] = digests(bot, "anna@4dustry.com")
        assert header(raw, "In-Reply-To") == "<fresh@mail.gmail.com>"
        assert ticket_order(body_of(digest))[0] == 1
        assert bot.tickets() == tickets  # no ticket opened, none changed
    finally:
        bot.close()


def test_replying_lista_to_a_daily_digest_sends_a_fresh_one(mixed) -> None:
    bot, ids = mixed
    bot.run(TUE_0800)
    [(_, daily)] = digests(bot, "anna@4dustry.com")
    tickets = bot.tickets()
    bot.deliver(outlook_reply(daily, ANNA, "#lista"), now=TUE_0800 + timedelta(hours=5))
    sent = digests(bot, "anna@4dustry.com")
    assert len(sent) == 2
    assert sent[-1][1]["Subject"] == "[4Dustry] Twoje zgłoszenia: 4 (1 po terminie)"
    assert ticket_order(body_of(sent[-1][1]))[0] == ids["overdue"]
    # Anything else in answer to a digest is about no ticket: nothing happens.
    before = len(raw_sent(bot))
    inbound = bot.deliver(
        gmail_reply(daily, ANNA, "Dzięki!", "<thanks@mail.gmail.com>"),
        now=TUE_0800 + timedelta(hours=6),
    )
    assert bot.inbound(inbound)["status"] == "ignored"
    assert bot.tickets() == tickets
    assert len(raw_sent(bot)) == before


def test_the_daemons_scheduler_keeps_the_digest_timer_in_step_with_the_config(
    tmp_path: Path,
) -> None:
    from mailbot import config as config_module
    from mailbot.scheduler import TimerScheduler
    from tests.helpers import write_config

    late = {"notifications.digest": '"23:59"'}  # never due while the test runs
    bot = Mailbot(tmp_path, settings=late)
    timers = TimerScheduler(bot.cfg, on_fired=lambda: None)
    try:
        timers.start()  # the real clock
        [timer] = bot.ctx.store.rows("timers", kind="agent_digest", status="scheduled")
        due = datetime.fromisoformat(timer["due_at"]).astimezone(bot.cfg.tz)
        today = datetime.now(UTC).astimezone(bot.cfg.tz).date()
        first = next(
            today + timedelta(days=n)
            for n in range(30)
            if bot.cfg.calendar.is_business_day(today + timedelta(days=n))
        )
        assert (due.date(), due.strftime("%H:%M")) == (first, "23:59")
        timers.reload(config_module.load(write_config(tmp_path, settings={})))  # digest ""
        assert bot.ctx.store.count("timers", kind="agent_digest", status="scheduled") == 0
        earlier = {"notifications.digest": '"23:58"'}
        timers.reload(config_module.load(write_config(tmp_path, settings=earlier)))
        [timer] = bot.ctx.store.rows("timers", kind="agent_digest", status="scheduled")
        assert datetime.fromisoformat(timer["due_at"]).astimezone(bot.cfg.tz).minute == 58
    finally:
        timers.shutdown()
        bot.close()


def test_a_pending_tickets_sla_state_is_read_from_its_stopped_clock() -> None:
    from mailbot.digest import sla_state

    due = "2026-12-01T10:00:00+00:00"
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # two days past the due time
    ticket = {"first_response_at": None, "first_response_due": due, "pending_since": None}
    assert sla_state(ticket, now).state == "overdue"
    assert sla_state(ticket, now).late == timedelta(days=2)
    # #czeka before the due time: the clock stands, the due time will move: not overdue.
    paused = {**ticket, "pending_since": "2026-12-01T09:00:00+00:00"}
    assert sla_state(paused, now).state == "paused"
    # #czeka after the due time: overdue by as long as the clock ran past it.
    late = {**ticket, "pending_since": "2026-12-01T11:30:00+00:00"}
    assert (sla_state(late, now).state, sla_state(late, now).late) == (
        "overdue",
        timedelta(hours=1, minutes=30),
    )
    answered = {**ticket, "first_response_at": "2026-12-01T09:00:00+00:00"}
    assert sla_state(answered, now).state == "answered"
