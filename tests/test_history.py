"""Moving in from an existing mailbox: `mailbot import --history [--sent PATH…] PATH…` (#13)."""

from __future__ import annotations

import json
import mailbox
import os
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailbot import cli, report, timers
from mailbot.sources.history import import_history, mail_time
from tests.helpers import WARSAW_NOON, Mailbot, make_mail

NOW = WARSAW_NOON  # the import runs on Monday 30 November 2026, 11:00 in Warsaw
CET = timedelta(hours=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def outlook_request(
    *, sender: str, subject: str, body: str, received: datetime, message_id: str
) -> bytes:
    """A customer's mail as Outlook 365 writes it, with the Received line our MX added on top."""
    raw = make_mail(
        sender=sender,
        subject=subject,
        body=body,
        message_id=message_id,
        date=received - timedelta(seconds=5),
        headers={
            "Thread-Topic": subject,
            "Thread-Index": "AdrF3hW0bq1Zp9xkQ0G7mYqL2v0cXw==",
            "X-MS-Exchange-Organization-SCL": "1",
            "Content-Language": "pl-PL",
        },
    )
    ours = (
        "Received: from EUR05-AM6-obe.outbound.protection.outlook.com (40.107.22.101)\r\n"
        f"\tby mx.4dustry.com with ESMTPS id 4AbC; {format_datetime(received)}\r\n"
        "Received: from AM0PR02MB5140.eurprd02.prod.outlook.com\r\n"
        f"\tby AM0PR02MB5140.eurprd02.prod.outlook.com; {format_datetime(received - CET)}\r\n"
    )
    return ours.encode() + raw


def gmail_follow_up(
    *, sender: str, subject: str, body: str, sent: datetime, parent: str, message_id: str
) -> bytes:
    return make_mail(
        sender=sender,
        subject=f"Re: {subject}",
        body=f"{body}\n\npon., 2 lis 2026 o 09:14 Support <pomoc@4dustry.com> napisał(a):\n> ...",
        message_id=message_id,
        date=sent,
        headers={"In-Reply-To": parent, "References": parent},
    )


def our_answer(
    *,
    to: str,
    subject: str,
    body: str,
    sent: datetime,
    in_reply_to: str | None,
    message_id: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    """An answer from the support mailbox as Thunderbird keeps it in the Sent folder."""
    msg = EmailMessage(policy=SMTP)
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(sent)
    msg["MIME-Version"] = "1.0"
    msg["User-Agent"] = "Mozilla Thunderbird"
    msg["Content-Language"] = "pl"
    msg["To"] = to
    msg["From"] = "Pomoc 4Dustry <pomoc@4dustry.com>"
    msg["Subject"] = f"Re: {subject}"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(f"{body}\n\nW dniu 02.11.2026 o 09:14, Klient pisze:\n> Dzień dobry\n")
    return msg.as_bytes()


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def run_cli(bot: Mailbot, *args: str) -> int:
    return cli.main(["--config", str(bot.directory / "config.toml"), "import", *args])


def scheduled_in_past(bot: Mailbot, now: datetime) -> int:
    return sum(
        1 for t in bot.ctx.store.rows("timers", status="scheduled") if at(t["due_at"]) <= now
    )


@pytest.fixture
def archive(tmp_path: Path) -> dict[str, Path | str]:
    """An inbox (Outlook request, Gmail follow-up) and a Sent mbox with our answers."""
    request = "<AM0PR02MB5140A1B2C3D4E5F6@AM0PR02MB5140.eurprd02.prod.outlook.com>"
    follow = "<CAJ9x+k4H1pQ@mail.gmail.com>"
    inbox = write_mbox(
        tmp_path / "Inbox.mbox",
        [
            outlook_request(
                sender="Jan Kowalski <jan@klient.pl>",
                subject="Faktura 11/2026 – błędna kwota",
                body="Dzień dobry, na fakturze 11/2026 jest błędna kwota. Proszę o korektę.",
                received=at("2026-11-02T09:14:03+01:00"),
                message_id=request,
            ),
            gmail_follow_up(
                sender="Jan Kowalski <jan@klient.pl>",
                subject="Faktura 11/2026 – błędna kwota",
                body="Dziękuję, czekam na korektę.",
                sent=at("2026-11-03T12:00:00+01:00"),
                parent="<c0ffee-1@4dustry.com>",
                message_id=follow,
            ),
        ],
    )
    sent = write_mbox(
        tmp_path / "Sent.mbox",
        [
            our_answer(
                to="Jan Kowalski <jan@klient.pl>",
                subject="Faktura 11/2026 – błędna kwota",
                body="Dzień dobry, korekta wyjdzie jutro. Pozdrawiam, Anna",
                sent=at("2026-11-03T10:30:00+01:00"),
                in_reply_to=request,
                message_id="<c0ffee-1@4dustry.com>",
            ),
            our_answer(
                to="Jan Kowalski <jan@klient.pl>",
                subject="Faktura 11/2026 – błędna kwota",
                body="Korekta jest w załączniku.",
                sent=at("2026-11-04T08:00:00+01:00"),
                in_reply_to=follow,
                message_id="<c0ffee-2@4dustry.com>",
            ),
        ],
    )
    return {"inbox": inbox, "sent": sent}


def test_history_sends_nothing_and_shows_the_old_answers_truthfully(bot, archive) -> None:
    summary = import_history(bot.ctx, [archive["inbox"]], [archive["sent"]], now=NOW)
    [ticket] = bot.tickets()
    # The time our MX received it (topmost Received), not the sender's Date, not the import.
    assert ticket["created_at"] == "2026-11-02T08:14:03+00:00"
    assert ticket["first_response_at"] == "2026-11-03T09:30:00+00:00"
    assert ticket["status"] == "pending"  # our answer is the latest message: waits on Jan
    assert ticket["updated_at"] == "2026-11-04T07:00:00+00:00"
    messages = bot.ctx.store.messages.of_ticket(ticket["id"])
    assert [(m["direction"], m["kind"], m["created_at"]) for m in messages] == [
        ("in", "customer", "2026-11-02T08:14:03+00:00"),
        ("out", "agent", "2026-11-03T09:30:00+00:00"),
        ("in", "customer", "2026-11-03T11:00:00+00:00"),
        ("out", "agent", "2026-11-04T07:00:00+00:00"),
    ]
    assert bot.ctx.store.count("outbox") == 0
    assert scheduled_in_past(bot, NOW) == 0
    assert (summary.messages, summary.tickets, summary.answered, summary.unanswered) == (4, 1, 1, 0)
    # Each inbound row keeps the mail's time and says when it was processed: today.
    inbound = bot.ctx.store.rows("inbound")
    assert {r["processed_at"] for r in inbound} == {"2026-11-30T10:00:00+00:00"}
    assert min(r["received_at"] for r in inbound) == "2026-11-02T08:14:03+00:00"
    doc = report.build(bot.ctx, NOW)
    assert doc["total"] == {
        "received": 1,
        "answered": 1,
        "within_sla": 1,
        "breached": 0,
        # Mon 09:14–18:00 and Tue 08:00–10:30 (opening hours 08:00–18:00): 8 h 46 + 2 h 30.
        "median_hours": 11.27,
        "p90_hours": 11.27,
    }
    # The daemon's next pass and its start (deadlines recomputed) send nothing either.
    bot.run(NOW)
    with bot.ctx.store.atomic():
        timers.recompute_open(bot.ctx, NOW)
    bot.run(NOW + timedelta(days=3))
    bot.outbox(expected=0)


def test_old_unanswered_ticket_has_no_past_reminders_even_after_a_restart(bot, tmp_path) -> None:
    old = write_mbox(
        tmp_path / "old.mbox",
        [
            outlook_request(
                sender="Ewa Nowak <ewa@firma.pl>",
                subject="Zamówienie 7781 nie dotarło",
                body="Dzień dobry, zamówienie 7781 nie dotarło. Proszę o informację.",
                received=at("2026-10-12T15:00:00+02:00"),
                message_id="<DB9PR10MB7781@DB9PR10MB.eurprd10.prod.outlook.com>",
            )
        ],
    )
    summary = import_history(bot.ctx, [old], [], now=NOW)
    assert (summary.tickets, summary.answered, summary.unanswered) == (1, 0, 1)
    [ticket] = bot.tickets()
    assert ticket["status"] == "open" and ticket["first_response_at"] is None
    assert bot.ctx.store.count("timers", status="scheduled") == 0
    # Each reminder's moment passed before the import: kept as skipped, so it never comes.
    skipped = bot.ctx.store.rows("timers", status="skipped")
    assert sorted(t["kind"] for t in skipped) == ["sla_breach", "sla_warning", "sla_warning"]
    assert all(at(t["due_at"]) <= NOW for t in skipped)
    with bot.ctx.store.atomic():
        timers.recompute_open(bot.ctx, NOW)  # what the daemon does when it starts
    assert bot.ctx.store.count("timers", status="scheduled") == 0
    bot.run(NOW + timedelta(days=1))
    bot.outbox(expected=0)
    # The report still says what happened: received, never answered, past its due time.
    assert report.build(bot.ctx, NOW)["total"]["breached"] == 1


def test_recent_unanswered_ticket_gets_its_future_reminders(bot, tmp_path) -> None:
    # Friday 10:00 in Warsaw: due Tuesday 10:00, after the import on Monday 11:00.
    recent = write_mbox(
        tmp_path / "recent.mbox",
        [
            outlook_request(
                sender="Ewa Nowak <ewa@firma.pl>",
                subject="Pytanie o fakturę",
                body="Dzień dobry, proszę o duplikat faktury.",
                received=at("2026-11-27T10:00:00+01:00"),
                message_id="<DB9PR10MB0001@DB9PR10MB.eurprd10.prod.outlook.com>",
            )
        ],
    )
    import_history(bot.ctx, [recent], [], now=NOW)
    [ticket] = bot.tickets()
    assert ticket["first_response_due"] == "2026-12-01T09:00:00+00:00"
    scheduled = bot.ctx.store.rows("timers", status="scheduled")
    assert {t["kind"] for t in scheduled} == {"sla_warning", "sla_breach"}
    assert all(at(t["due_at"]) > NOW for t in scheduled)
    bot.run(NOW)
    bot.outbox(expected=0)  # nothing about old mail now; the reminders come when due
    bot.run(at("2026-12-01T09:00:00+00:00"))
    assert [m["To"] for m in bot.outbox()] != []


def test_answer_without_references_threads_by_subject_and_recipient(bot, tmp_path) -> None:
    """Apple Mail's answer written as a new message to the customer, with the same subject."""
    inbox = write_mbox(
        tmp_path / "in.mbox",
        [
            make_mail(
                sender="Emma Brown <emma@example.co.uk>",
                subject="Cannot complete registration",
                body="Hello, the registration form fails at step 2. Thank you.",
                message_id="<6D1C8E2A-90B1-4E7B-9A43-1C2D3E4F5A6B@example.co.uk>",
                date=at("2026-11-16T09:00:00+00:00"),
                headers={"X-Mailer": "Apple Mail (2.3774.200.91.1.1)"},
            )
        ],
    )
    sent = write_mbox(
        tmp_path / "sent.mbox",
        [
            our_answer(
                to="emma@example.co.uk",
                subject="Cannot complete registration",
                body="Hello Emma, fixed now.",
                sent=at("2026-11-17T14:00:00+00:00"),
                in_reply_to=None,
                message_id="<answer-77@4dustry.com>",
            ),
            our_answer(  # to someone we never had a ticket for: kept out, counted as ignored
                to="nobody@example.org",
                subject="Offer",
                body="Hello",
                sent=at("2026-11-17T15:00:00+00:00"),
                in_reply_to=None,
                message_id="<answer-78@4dustry.com>",
            ),
        ],
    )
    summary = import_history(bot.ctx, [inbox], [sent], now=NOW)
    [ticket] = bot.tickets()
    assert ticket["first_response_at"] == "2026-11-17T14:00:00+00:00"
    assert (summary.answered, summary.ignored) == (1, 1)
    assert bot.ctx.store.count("outbox") == 0


def test_old_autoresponder_mail_is_kept_but_is_no_answer(bot, tmp_path) -> None:
    request = "<CAF=ab12@mail.gmail.com>"
    inbox = write_mbox(
        tmp_path / "in.mbox",
        [
            make_mail(
                subject="Reklamacja",
                message_id=request,
                date=at("2026-11-09T10:00:00+01:00"),
            )
        ],
    )
    sent = write_mbox(
        tmp_path / "sent.mbox",
        [
            our_answer(
                to="jan@klient.pl",
                subject="Reklamacja",
                body="Dziękujemy, odpowiemy wkrótce.",
                sent=at("2026-11-09T10:00:30+01:00"),
                in_reply_to=request,
                message_id="<ack-1@4dustry.com>",
                headers={"Auto-Submitted": "auto-replied"},
            )
        ],
    )
    import_history(bot.ctx, [inbox], [sent], now=NOW)
    [ticket] = bot.tickets()
    assert ticket["first_response_at"] is None and ticket["status"] == "open"
    kinds = [(m["direction"], m["kind"]) for m in bot.ctx.store.messages.of_ticket(1)]
    assert kinds == [("in", "customer"), ("out", "system")]


def test_received_time_comes_from_our_received_line_then_date_then_file(tmp_path) -> None:
    now = at("2026-11-30T10:00:00+00:00")
    file_time = at("2026-01-05T08:00:00+00:00")
    with_received = (
        b"Received: from a by mx.4dustry.com; Tue, 3 Nov 2026 10:00:07 +0100\r\n"
        b"Received: from b by a; Tue, 3 Nov 2026 08:00:00 +0000\r\n"
        b"Date: Tue, 3 Nov 2026 08:59:00 +0000\r\nSubject: x\r\n\r\nbody\r\n"
    )
    assert mail_time(with_received, file_time, now) == at("2026-11-03T09:00:07+00:00")
    only_date = b"Date: Wed, 04 Nov 2026 12:00:00 -0500\r\nSubject: x\r\n\r\nbody\r\n"
    assert mail_time(only_date, file_time, now) == at("2026-11-04T17:00:00+00:00")
    broken = b"Received: garbage\r\nDate: not a date\r\n\r\nbody\r\n"
    assert mail_time(broken, file_time, now) == file_time
    future = b"Date: Fri, 01 Jan 2100 00:00:00 +0000\r\n\r\nbody\r\n"
    assert mail_time(future, file_time, now) == now


def test_eml_folder_and_maildir_are_dated_by_the_files_when_headers_say_nothing(
    bot, tmp_path
) -> None:
    folder = tmp_path / "eml"
    folder.mkdir()
    raw = make_mail(message_id="<undated@klient.pl>").replace(b"Date:", b"X-Old-Date:")
    path = folder / "a.eml"
    path.write_bytes(raw)
    stamp = at("2026-11-10T12:00:00+00:00").timestamp()
    os.utime(path, (stamp, stamp))
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(make_mail(message_id="<md@klient.pl>", date=at("2026-11-11T12:00:00+00:00")))
    maildir.close()
    import_history(bot.ctx, [folder, tmp_path / "Maildir"], [], now=NOW)
    assert [t["created_at"] for t in bot.tickets()] == [
        "2026-11-10T12:00:00+00:00",
        "2026-11-11T12:00:00+00:00",
    ]


def test_cli_summary_resumes_and_reports_an_interruption(bot, archive, capsys, monkeypatch):
    from mailbot.sources import history

    real = history.process_pending

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(history, "process_pending", interrupted)
    assert run_cli(bot, "--history", "--sent", str(archive["sent"]), str(archive["inbox"])) == 130
    out = capsys.readouterr()
    assert out.err.strip().splitlines()[-1] == "interrupted; run again to continue"
    assert bot.ctx.store.count("inbound", status="pending") == 4  # stored, not yet processed
    monkeypatch.setattr(history, "process_pending", real)
    assert run_cli(bot, "--history", "--sent", str(archive["sent"]), str(archive["inbox"])) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("history: 4 messages (0 new, 4 already stored); 1 tickets, 1 answered")
    assert "nothing sent" in line
    assert run_cli(bot, "--history", "--sent", str(archive["sent"]), str(archive["inbox"])) == 0
    assert "(0 new, 4 already stored)" in capsys.readouterr().out
    assert bot.ctx.store.count("messages") == 4 and len(bot.tickets()) == 1
    assert bot.ctx.store.count("outbox") == 0


def test_close_before_closes_old_tickets_as_of_their_last_mail(bot, archive, tmp_path) -> None:
    summary = import_history(
        bot.ctx, [archive["inbox"]], [archive["sent"]], now=NOW, close_before=date(2026, 11, 20)
    )
    [ticket] = bot.tickets()
    assert ticket["status"] == "closed" and summary.closed == 1
    assert ticket["closed_at"] == "2026-11-04T07:00:00+00:00"
    assert bot.ctx.store.count("outbox") == 0
    # Jan writes again today, past the reopen window: a new ticket, linked to the old one.
    bot.deliver(
        make_mail(
            sender="Jan Kowalski <jan@klient.pl>",
            subject="Re: Faktura 11/2026 – błędna kwota",
            body="Dzień dobry, korekty nadal nie ma.",
            headers={"In-Reply-To": "<c0ffee-2@4dustry.com>"},
        ),
        now=NOW,
    )
    tickets = bot.tickets()
    assert len(tickets) == 2 and tickets[1]["previous_ticket"] == ticket["id"]


@pytest.mark.slow
def test_corpus_history_import_sends_nothing(bot, corpus) -> None:
    inventory = json.loads((corpus / "INVENTORY.json").read_text())["files"]
    paths = [
        corpus / rel
        for rel, info in inventory.items()
        if info.get("kind") != "body-only text (no headers) or HTML fragment"
    ]
    summary = import_history(bot.ctx, paths, [], now=NOW)
    assert summary.messages > 0 and summary.tickets > 0
    assert bot.ctx.store.count("outbox") == 0
    assert scheduled_in_past(bot, NOW) == 0
    assert all(at(t["created_at"]) <= NOW for t in bot.tickets()), "a ticket dated in the future"
    bot.run(NOW)
    bot.outbox(expected=0)
    assert summary.quarantined == bot.ctx.store.count("inbound", status="quarantined")
    assert bot.ctx.store.count("inbound", status="pending") == 0


def test_imap_folders_of_the_configured_mailbox_resume_by_uid(tmp_path, dovecot, capsys) -> None:
    from tests.daemon_helpers import daemon_settings

    bot = Mailbot(tmp_path, settings=daemon_settings(dovecot=dovecot))
    try:
        request = "<AM0PR02MB9999@AM0PR02MB9999.eurprd02.prod.outlook.com>"
        dovecot.create_folder("Sent")
        dovecot.append(
            outlook_request(
                sender="Jan Kowalski <jan@klient.pl>",
                subject="Brak dostępu do panelu",
                body="Dzień dobry, nie mogę zalogować się do panelu.",
                received=at("2026-11-16T09:00:00+01:00"),
                message_id=request,
            ),
            flags=["\\Seen"],
        )
        dovecot.append(
            our_answer(
                to="jan@klient.pl",
                subject="Brak dostępu do panelu",
                body="Hasło zostało zresetowane.",
                sent=at("2026-11-16T11:00:00+01:00"),
                in_reply_to=request,
                message_id="<answer-1@4dustry.com>",
            ),
            "Sent",
        )
        assert run_cli(bot, "--history", "--sent", "imap:Sent", "imap:INBOX") == 0
        [ticket] = bot.tickets()
        assert ticket["first_response_at"] == "2026-11-16T10:00:00+00:00"
        # Read-only: the server's mail keeps its flags (no \Seen added, no keyword).
        assert [m.flags for m in dovecot.messages("Sent")] == [()]
        assert bot.ctx.store.imap.get("history:INBOX")["last_uid"] == 1
        dovecot.append(
            gmail_follow_up(
                sender="Jan Kowalski <jan@klient.pl>",
                subject="Brak dostępu do panelu",
                body="Działa, dziękuję!",
                sent=at("2026-11-16T12:00:00+01:00"),
                parent="<answer-1@4dustry.com>",
                message_id="<CAJ9x+zz@mail.gmail.com>",
            )
        )
        capsys.readouterr()
        assert run_cli(bot, "--history", "--sent", "imap:Sent", "imap:INBOX") == 0
        # Only the new message was fetched: nothing read again from either folder.
        assert "(1 new, 0 already stored)" in capsys.readouterr().out
        assert bot.ctx.store.imap.get("history:INBOX")["last_uid"] == 2
        assert len(bot.tickets()) == 1 and bot.ctx.store.count("messages") == 3
        assert bot.ctx.store.count("outbox") == 0
    finally:
        bot.close()


@pytest.mark.slow
def test_generated_archive_imports_with_the_figures_it_was_made_with(bot, tmp_path) -> None:
    """2,000 messages (inbox + Sent, weekends included); `python -m bench.history` runs 20,000."""
    from tests.history_archive import archive

    made = archive(tmp_path, 2_000, NOW, bot.cfg)
    want = made.expected
    summary = import_history(bot.ctx, [made.inbox], [made.sent], now=NOW)
    assert (summary.messages, summary.tickets, summary.automatic, summary.quarantined) == (
        want.messages,
        want.tickets,
        want.automatic,
        0,
    )
    assert (summary.answered, summary.unanswered) == (want.answered, want.unanswered)
    total = report.build(bot.ctx, NOW)["total"]
    assert (total["received"], total["answered"]) == (want.tickets, want.answered)
    assert (total["within_sla"], total["breached"]) == (want.within_sla, want.breached)
    assert bot.ctx.store.count("tickets", status="pending") == want.pending
    assert sorted(t["created_at"] for t in bot.tickets()) == sorted(want.received_at)
    assert bot.ctx.store.count("outbox") == 0
    assert scheduled_in_past(bot, NOW) == 0


@pytest.mark.parametrize("command", ["#priorytet normalny", "#priorytet pilny"])
def test_old_agent_mail_and_urgent_requests_send_nothing_and_say_so(tmp_path, command) -> None:
    """Whatever a decision would send in live mode becomes an event when history is replayed."""
    bot = Mailbot(tmp_path, settings={"mailbot.trusted_authserv_ids": '["mx.4dustry.com"]'})
    try:
        request = "<DB7PR01MB4242@DB7PR01MB.eurprd01.prod.outlook.com>"
        inbox = write_mbox(
            tmp_path / "in.mbox",
            [
                outlook_request(  # urgent, from a customer with an account manager
                    sender="Piotr Zając <piotr@przyklad.pl>",
                    subject="PILNE: awaria linii produkcyjnej",
                    body="Dzień dobry, linia stoi od rana. Proszę o pilny kontakt.",
                    received=at("2026-11-18T07:30:00+01:00"),
                    message_id=request,
                ),
                make_mail(  # Anna answered from her own Outlook; DMARC passed at our MX
                    sender="Anna Kowalska <anna@4dustry.com>",
                    to="pomoc@4dustry.com",
                    subject="RE: PILNE: awaria linii produkcyjnej",
                    body=f"{command}\nTechnik jest w drodze.\n\nAnna",
                    message_id="<AM9PR04MB1111@AM9PR04MB.eurprd04.prod.outlook.com>",
                    date=at("2026-11-18T08:10:00+01:00"),
                    headers={
                        "In-Reply-To": request,
                        "References": request,
                        "Authentication-Results": "mx.4dustry.com; dmarc=pass"
                        " header.from=4dustry.com",
                    },
                ),
            ],
        )
        import_history(bot.ctx, [inbox], [], now=NOW)
        [ticket] = bot.tickets()
        # Her command still counts; an urgent one pages nobody either.
        assert ticket["priority"] == ("urgent" if "pilny" in command else "normal")
        assert ticket["first_response_at"] == "2026-11-18T07:10:00+00:00"
        assert bot.ctx.store.count("outbox") == 0 and bot.ctx.store.count("escalations") == 0
        events = {(e["kind"], e["detail"]) for e in bot.ctx.store.rows("events", ticket_id=1)}
        assert ("escalation", "urgent; old mail imported: not paged") in events
        assert ("not-sent", "reply to piotr@przyklad.pl: history import") in events
        bot.run(NOW)
        bot.outbox(expected=0)
    finally:
        bot.close()


def test_progress_bar_only_on_a_terminal(bot, archive, capsys, monkeypatch) -> None:
    class Terminal:
        def __init__(self) -> None:
            self.written: list[str] = []

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            self.written.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    assert run_cli(bot, "--history", str(archive["inbox"])) == 0
    assert "processing [" not in capsys.readouterr().err  # not a terminal: no bar
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert run_cli(bot, "--history", "--sent", str(archive["sent"]), str(archive["inbox"])) == 0
    drawn = "".join(terminal.written)
    assert "\rprocessing [" in drawn and "] 2/2" in drawn and drawn.endswith("\n")


def test_a_forward_to_a_colleague_from_the_sent_folder_is_no_answer(bot, tmp_path) -> None:
    request = "<CAE8p0k@mail.gmail.com>"
    inbox = write_mbox(
        tmp_path / "in.mbox",
        [make_mail(subject="Zwrot towaru", message_id=request, date=at("2026-11-10T09:00:00Z"))],
    )
    sent = write_mbox(
        tmp_path / "sent.mbox",
        [
            our_answer(  # Thunderbird's "Forward inline" to the warehouse, threaded on Jan's mail
                to="Magazyn <magazyn@dostawca.pl>",
                subject="Zwrot towaru",
                body="Proszę o odbiór zwrotu od klienta.",
                sent=at("2026-11-10T10:00:00Z"),
                in_reply_to=request,
                message_id="<fwd-1@4dustry.com>",
            )
        ],
    )
    import_history(bot.ctx, [inbox], [sent], now=NOW)
    [ticket] = bot.tickets()
    assert ticket["first_response_at"] is None and ticket["status"] == "open"
    kept = [(m["direction"], m["kind"]) for m in bot.ctx.store.messages.of_ticket(1)]
    assert kept == [("in", "customer"), ("in", "note")]
