"""Outgoing mail delivery: temporary failures retry for the queue lifetime, 5xx fails, admins
requeue or cancel, leads hear once when mail fails for good, and a row in flight is not resent
first thing after a restart."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot import cli, refusals
from mailbot.config import ConfigError
from mailbot.outbox import SmtpTransport, deliver_due, make_transport
from mailbot.store import from_db
from mailbot.worker import process_pending
from tests.daemon_helpers import daemon_settings
from tests.helpers import Mailbot, make_mail

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 10:00 in Warsaw
LEADS = ["kierownik@4dustry.com"]


def outlook_mail(n: int) -> bytes:
    """A new request as Outlook (Microsoft 365) writes it."""
    return make_mail(
        sender=f"Katarzyna Zielińska <k.zielinska{n}@stalprofil.pl>",
        subject=f"Zamówienie {n} – brak potwierdzenia",
        message_id=(
            f"<AM9PR04MB{8000 + n}C1D2E3F4A5B6C7D8E9F0@AM9PR04MB8412.eurprd04.prod.outlook.com>"
        ),
        headers={
            "Thread-Topic": f"Zamówienie {n} – brak potwierdzenia",
            "Thread-Index": "AdtKK1w9bXJ0c3RhbmRhcmQ=",
            "Content-Language": "pl-PL",
            "X-MS-Has-Attach": "",
            "X-MS-TNEF-Correlator": "",
        },
    )


def gmail_mail(n: int) -> bytes:
    """A new request as Gmail writes it."""
    return make_mail(
        sender=f"Piotr Lis <piotr.lis{n}@gmail.com>",
        subject=f"Faktura {n}",
        body="Dzień dobry,\n\nnie dostałem faktury za listopad.\n\nPozdrawiam\nPiotr",
        message_id=f"<CAH7Zq1x{n}kJ3vLw9-mP2sQ+dF4Yb8nR0tE6uW@mail.gmail.com>",
    )


def smtp_bot(tmp_path: Path, sink, **more: str) -> Mailbot:
    return Mailbot(tmp_path, settings=daemon_settings(sink, **more))


def queue(bot: Mailbot, *mails: bytes) -> int:
    """Store and process the mails at NOW; the number of outbox rows they produced."""
    for raw in mails:
        bot.feed(raw, now=NOW)
    process_pending(bot.ctx, NOW)
    return bot.ctx.store.count("outbox")


def outbox_cli(bot: Mailbot, capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["--config", str(bot.cfg.path), "outbox", *args])
    out, err = capsys.readouterr()
    return code, out, err


def notices_to_leads(bot: Mailbot) -> list:
    return bot.ctx.store.rows("outbox", template="outbox_failing")


# -- temporary failures ------------------------------------------------------------------------


def test_relay_down_for_ten_backoffs_then_back_delivers_every_row_once(tmp_path, smtp_sink) -> None:
    """Connection refused for ten attempts (about four hours) fails nothing: once the relay is
    back, every ack and notification goes out, each exactly once."""
    bot = smtp_bot(tmp_path, smtp_sink)
    rows = queue(bot, outlook_mail(1), gmail_mail(2))
    smtp_sink.stop()  # the port is closed: connection refused
    transport = make_transport(bot.cfg)
    now = NOW
    for attempt in range(1, 11):
        report = deliver_due(bot.ctx, transport, now)
        assert (report.sent, report.retried, report.failed) == (0, rows, 0)
        pending = bot.ctx.store.rows("outbox", status="pending")
        assert len(pending) == rows and all(r["attempts"] == attempt for r in pending)
        now = max(from_db(r["next_attempt_at"]) or now for r in pending)  # all due again
    assert now - NOW > timedelta(hours=3)
    assert bot.ctx.store.count("outbox", status="failed") == 0
    assert all("ConnectionRefused" in r["last_error"] for r in bot.ctx.store.rows("outbox"))
    smtp_sink.start()
    report = deliver_due(bot.ctx, transport, now)
    transport.close()
    assert report.sent == rows
    ids = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert len(ids) == len(set(ids)) == rows
    assert bot.ctx.store.count("outbox", status="sent") == rows
    assert notices_to_leads(bot) == []  # nothing failed for good: nobody was alarmed
    bot.close()


def test_4xx_retries_until_the_queue_lifetime_then_fails_and_tells_the_leads_once(
    tmp_path, smtp_sink
) -> None:
    bot = smtp_bot(tmp_path, smtp_sink, **{"outbound.queue_lifetime": '"3h"'})
    rows = queue(bot, outlook_mail(1), gmail_mail(2))
    smtp_sink.fail_with(451, "4.7.500 Server busy. Please try again later.", times=1000)
    transport = make_transport(bot.cfg)
    now, passes = NOW, 0
    while bot.ctx.store.count("outbox", status="failed") < rows:
        deliver_due(bot.ctx, transport, now)
        passes += 1
        due = bot.ctx.store.outbox.next_due()
        if due is None:
            break
        now = max(now, due)
    failed = bot.ctx.store.rows("outbox", status="failed")
    assert len(failed) == rows
    # Retried until three hours after each row was queued, not one minute beyond.
    assert now == NOW + timedelta(hours=3) and passes > 5
    assert all(r["last_error"].startswith("gave up after") for r in failed)
    assert all("in 3h: 451 4.7.500" in r["last_error"] for r in failed)
    # One notice per lead for the whole episode, not one per failed message.
    [notice] = notices_to_leads(bot)
    assert notice["to_addr"] == LEADS[0] and notice["status"] == "pending"
    assert bot.ctx.store.count("events", kind="delivery-failing") == 1
    assert bot.ctx.store.count("events", kind="delivery-failed") == rows
    smtp_sink.next_responses = []
    deliver_due(bot.ctx, transport, now)  # the relay works again: the notice goes out
    transport.close()
    [sent] = [m.message for m in smtp_sink.messages]
    assert sent["To"] == LEADS[0]
    assert sent["Subject"] == "[4Dustry] Wysyłka poczty nie działa"
    assert sent["Auto-Submitted"] == "auto-generated"
    body = sent.get_body(preferencelist=("plain",)).get_content()
    assert "451 4.7.500 Server busy" in body
    assert "Liczba niewysłanych wiadomości: 1." in body  # when the first one failed
    assert "mailbot outbox retry --failed" in body
    assert "ten sam serwer pocztowy" in body  # it says it may not arrive
    bot.close()


def test_maildir_write_error_is_retried_not_failed(tmp_path) -> None:
    """A full or unwritable disk under the Maildir is temporary: nothing is lost."""
    bot = Mailbot(tmp_path)
    rows = queue(bot, gmail_mail(1))
    transport = make_transport(bot.cfg)  # makes the Maildir
    tmp_dir = bot.cfg.outbound.path / "tmp"
    if os.geteuid() == 0:  # root writes into read-only directories: take the directory away
        shutil.rmtree(tmp_dir)
        tmp_dir.write_text("not a directory")
    else:
        tmp_dir.chmod(0o500)
    report = deliver_due(bot.ctx, transport, NOW)
    assert (report.sent, report.retried, report.failed) == (0, rows, 0)
    row = bot.ctx.store.rows("outbox")[0]
    assert row["status"] == "pending" and ("Error" in row["last_error"])
    if tmp_dir.is_file():
        tmp_dir.unlink()
        tmp_dir.mkdir()
    else:
        tmp_dir.chmod(0o700)
    due = max(from_db(r["next_attempt_at"]) or NOW for r in bot.ctx.store.rows("outbox"))
    assert deliver_due(bot.ctx, transport, due).sent == rows
    bot.outbox(expected=rows)
    bot.close()


# -- permanent refusals, explained; requeue and cancel ------------------------------------------


SEND_AS_DENIED = (
    "5.7.60 SMTP; Client does not have permissions to send as this sender"
    " [AM9PR04MB8412.eurprd04.prod.outlook.com]"
)


def test_send_as_denied_fails_explains_and_retry_sends_again(tmp_path, smtp_sink, capsys) -> None:
    bot = smtp_bot(tmp_path, smtp_sink)
    rows = queue(bot, outlook_mail(1))
    smtp_sink.fail_with(550, SEND_AS_DENIED, times=rows)
    transport = make_transport(bot.cfg)
    report = deliver_due(bot.ctx, transport, NOW)
    assert report.failed == rows and report.retried == 0  # a 5xx fails at the first attempt
    # The leads hear once (their notice is queued behind the refused mail).
    assert [n["to_addr"] for n in notices_to_leads(bot)] == LEADS

    code, out, _ = outbox_cli(bot, capsys, "--status", "failed")
    assert code == 0
    lines = out.splitlines()
    assert len([line for line in lines if " failed " in line]) == rows
    hints = [line for line in lines if line.startswith("    -> ")]
    assert len(hints) == rows
    assert all("Send As" in h for h in hints)
    code, out, _ = outbox_cli(bot, capsys, "--status", "failed", "--json")
    docs = json.loads(out)
    assert all("Send As" in d["hint"] and "5.7.60" in d["last_error"] for d in docs)

    # The admin granted Send As: one command puts every failed message back.
    code, out, _ = outbox_cli(bot, capsys, "retry", "--failed")
    assert code == 0 and f"{rows} messages queued again" in out
    assert bot.ctx.store.count("outbox", status="failed") == 0
    assert bot.ctx.store.count("events", kind="outbox-retry") == rows
    report = deliver_due(bot.ctx, transport, datetime.now(UTC))
    transport.close()
    assert report.sent == rows + 1  # and the leads' notice
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == sorted(
        [r["to_addr"] for r in bot.ctx.store.rows("outbox")]
    )
    bot.close()


def test_retry_and_cancel_one_message(tmp_path, smtp_sink, capsys) -> None:
    bot = smtp_bot(tmp_path, smtp_sink)
    queue(bot, gmail_mail(1))
    ack, *notifications = bot.ctx.store.rows("outbox")
    assert ack["template"] == "ack"
    code, out, _ = outbox_cli(bot, capsys, "cancel", str(ack["id"]))
    assert code == 0 and "cancelled" in out
    transport = make_transport(bot.cfg)
    deliver_due(bot.ctx, transport, NOW)
    assert [m.rcpt_tos for m in smtp_sink.messages] == [(n["to_addr"],) for n in notifications]
    # Sent mail can be neither cancelled nor sent again; unknown ids are named as such.
    code, _, err = outbox_cli(bot, capsys, "cancel", str(notifications[0]["id"]))
    assert code == 1 and "it is sent" in err
    code, _, err = outbox_cli(bot, capsys, "retry", "9999")
    assert code == 1 and "no such message" in err
    code, _, err = outbox_cli(bot, capsys, "retry")
    assert code == 2 and "give an ID or --failed" in err
    # A cancelled ack can still be sent after all.
    code, out, _ = outbox_cli(bot, capsys, "retry", str(ack["id"]))
    assert code == 0 and "1 message queued again" in out
    deliver_due(bot.ctx, transport, datetime.now(UTC))
    transport.close()
    assert smtp_sink.messages[-1].rcpt_tos == ("piotr.lis1@gmail.com",)
    assert bot.ctx.store.rows("outbox", id=ack["id"])[0]["status"] == "sent"
    assert bot.ctx.store.count("events", kind="outbox-cancel") == 1
    bot.close()


def test_leads_hear_again_only_after_mail_went_out_in_between(tmp_path, smtp_sink) -> None:
    bot = smtp_bot(tmp_path, smtp_sink)
    transport = make_transport(bot.cfg)
    rows = queue(bot, outlook_mail(1))
    smtp_sink.fail_with(550, SEND_AS_DENIED, times=rows)
    deliver_due(bot.ctx, transport, NOW)
    assert len(notices_to_leads(bot)) == 1
    deliver_due(bot.ctx, transport, NOW)  # the notice itself goes out: that ends nothing
    queue(bot, gmail_mail(2))
    smtp_sink.fail_with(550, SEND_AS_DENIED, times=1)
    deliver_due(bot.ctx, transport, NOW)  # refused before anything went out: same episode
    assert len(notices_to_leads(bot)) == 1
    later = NOW + timedelta(hours=1)
    queue(bot, outlook_mail(3))  # the relay accepts this one's mail: mail works again ...
    deliver_due(bot.ctx, transport, later)
    bot.feed(gmail_mail(4), now=later)
    process_pending(bot.ctx, later)
    smtp_sink.fail_with(550, SEND_AS_DENIED, times=1)
    deliver_due(bot.ctx, transport, later)  # ... so a new refusal is news
    transport.close()
    assert len(notices_to_leads(bot)) == 2
    bot.close()


def test_an_unknown_recipient_fails_that_message_only_and_alarms_nobody(
    tmp_path, smtp_sink
) -> None:
    bot = smtp_bot(tmp_path, smtp_sink)
    queue(bot, gmail_mail(1))
    smtp_sink.fail_with(
        550, "5.1.1 The email account that you tried to reach does not exist.", times=1
    )
    transport = make_transport(bot.cfg)
    report = deliver_due(bot.ctx, transport, NOW)
    transport.close()
    assert report.failed == 1
    [failed] = bot.ctx.store.rows("outbox", status="failed")
    assert failed["template"] == "ack"
    assert "does not exist" in refusals.explain(failed["last_error"])
    assert notices_to_leads(bot) == []
    bot.close()


# -- the message in flight ---------------------------------------------------------------------


class KilledAfterHandover(SmtpTransport):
    """The relay accepts the message, then mailbot dies before recording it (kill -9)."""

    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None:
        super().send(key, envelope_from, recipients, data)
        raise KeyboardInterrupt  # not caught by delivery: like the process ending right here


def test_a_message_in_flight_at_a_kill_waits_instead_of_going_out_first_again(
    tmp_path, smtp_sink
) -> None:
    bot = smtp_bot(tmp_path, smtp_sink)
    rows = queue(bot, outlook_mail(1), gmail_mail(2))
    first = bot.ctx.store.rows("outbox")[0]
    killed = KilledAfterHandover(bot.cfg)
    with pytest.raises(KeyboardInterrupt):
        deliver_due(bot.ctx, killed, NOW)
    killed.close()
    assert [m.message["Message-ID"] for m in smtp_sink.messages] == [first["message_id"]]
    # Restarted right away, and killed again twice: the same ack is not resent each time.
    for restart in range(3):
        transport = make_transport(bot.cfg)
        deliver_due(bot.ctx, transport, NOW + timedelta(seconds=restart))
        transport.close()
    ids = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert len(ids) == rows and ids.count(first["message_id"]) == 1
    row = bot.ctx.store.rows("outbox", id=first["id"])[0]
    assert row["status"] == "pending" and "interrupted" in row["last_error"]
    # At least once: it is sent again later, with the same Message-ID.
    due = bot.ctx.store.outbox.next_due()
    assert due is not None and NOW + timedelta(seconds=3) < due < NOW + timedelta(minutes=1)
    transport = make_transport(bot.cfg)
    assert deliver_due(bot.ctx, transport, due).sent == 1
    transport.close()
    assert [m.message["Message-ID"] for m in smtp_sink.messages].count(first["message_id"]) == 2
    bot.close()


# -- everything due, one body at a time ---------------------------------------------------------


def test_run_once_sends_everything_due_not_only_the_first_200(tmp_path) -> None:
    # 17 people of one company at once: acks for all of them (no per-domain flood limit).
    bot = Mailbot(tmp_path, settings={"limits.auto_replies_per_domain_per_10min": "0"})
    for n in range(35):
        bot.feed(outlook_mail(n) if n % 2 else gmail_mail(n), now=NOW)
    process_pending(bot.ctx, NOW)
    rows = bot.ctx.store.count("outbox")
    assert rows > 100
    transport = make_transport(bot.cfg)
    report = deliver_due(bot.ctx, transport, NOW, limit=40)  # batches smaller than the queue
    transport.close()
    assert report.sent == rows
    assert bot.ctx.store.count("outbox", status="pending") == 0
    bot.outbox(expected=rows)
    bot.close()


class CountingTransport:
    """A relay that accepts everything and keeps only sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def send(self, key: str, envelope_from: str, recipients: list[str], data: bytes) -> None:
        self.sizes.append(len(data))

    def close(self) -> None:
        pass


def test_delivery_memory_does_not_grow_with_the_queue(tmp_path) -> None:
    """300 queued answers of 200 kB each (60 MB) go out holding a few bodies at a time."""
    bot = Mailbot(tmp_path)
    body = ("Szczegółowa odpowiedź z zestawieniem pozycji zamówienia.\n" * 3500)[:200_000]
    with bot.ctx.store.atomic():
        for n in range(300):
            bot.ctx.store.outbox.insert(
                {
                    "template": "reply",
                    "to_addr": f"klient{n}@stalprofil.pl",
                    "from_name": "Anna Kowalska",
                    "subject": f"Re: [4Dustry #{n}] Zamówienie",
                    "body": body,
                    "message_id": bot.ctx.signer.message_id(0, "reply", f"klient{n}@stalprofil.pl"),
                    "next_attempt_at": "2026-11-30T09:00:00+00:00",
                    "created_at": "2026-11-30T09:00:00+00:00",
                }
            )
    transport = CountingTransport()
    tracemalloc.start()
    try:
        report = deliver_due(bot.ctx, transport, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.sent == 300 and min(transport.sizes) > 200_000
    assert peak < 8_000_000, f"peak {peak / 1e6:.1f} MB while sending"
    bot.close()


# -- configuration and explanations ------------------------------------------------------------


def test_queue_lifetime_is_calendar_time_and_validated(tmp_path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    bot = Mailbot(tmp_path / "a", settings={"outbound.queue_lifetime": '"1 day 12h"'})
    assert bot.cfg.outbound.queue_lifetime == timedelta(days=1, hours=12)
    bot.close()
    assert Mailbot(tmp_path / "b").cfg.outbound.queue_lifetime == timedelta(days=5)
    with pytest.raises(ConfigError) as caught:
        Mailbot(tmp_path / "c", settings={"outbound.queue_lifetime": '"soon"'})
    assert caught.value.problems == [
        "config.toml: [outbound] queue_lifetime: invalid time span 'soon':"
        ' expected e.g. "5 days" or "12h"'
    ]


@pytest.mark.parametrize(
    ("error", "advice"),
    [
        ("550 5.7.60 SMTP; Client does not have permissions to send as this sender", "Send As"),
        (
            "SMTPAuthenticationError: (535, b'5.7.139 Authentication unsuccessful,"
            " SmtpClientAuthentication is disabled for the Tenant.')",
            "Authenticated SMTP",
        ),
        ("530 5.7.57 Client not authenticated to send mail.", "Authenticated SMTP"),
        ("535 5.7.3 Authentication unsuccessful", "OAuth2"),
        ("550 5.7.708 Service unavailable. Access denied, traffic not accepted", "tenant"),
        (
            "SMTPAuthenticationError: (535, b'5.7.8 Username and Password not accepted."
            " For more information, go to https://support.google.com/mail/?p=BadCredentials')",
            "app password",
        ),
        ("530 5.7.0 Authentication Required.", "app password"),
        ("554 5.7.1 <jan@klient.pl>: Relay access denied", "relaying denied"),
        ("550 5.7.26 This mail has been blocked because the sender is unauthenticated.", "DKIM"),
        (
            "recipients refused: {'jan@klient.pl': (550, b'5.4.1 Recipient address rejected')}",
            "recipient was rejected",
        ),
        ("552 5.2.2 The email account that you tried to reach is over quota.", "full"),
        ("452 4.2.2 The email account that you tried to reach is over quota.", "retrying"),
        ("550 5.1.1 <x@klient.pl>: Recipient address rejected: User unknown", "does not exist"),
    ],
)
def test_common_provider_refusals_are_explained(error: str, advice: str) -> None:
    hint = refusals.explain(error)
    assert hint is not None and advice in hint
    assert len(hint) < 160  # one short line under the error


def test_the_leads_notice_in_english_explains_the_refusal(tmp_path, smtp_sink) -> None:
    """Microsoft 365 with SMTP AUTH switched off for the tenant: the relay refuses the sender
    after login; leads reading English get what it means and what to run once it is fixed."""
    bot = smtp_bot(tmp_path, smtp_sink, **{"mailbot.default_language": '"en"'})
    rows = queue(bot, gmail_mail(1))
    smtp_sink.fail_with(
        554, "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled", times=rows
    )
    transport = make_transport(bot.cfg)
    deliver_due(bot.ctx, transport, NOW)
    assert bot.ctx.store.count("outbox", status="failed") == rows
    deliver_due(bot.ctx, transport, NOW)  # the relay takes the notice (other rules for it)
    transport.close()
    [notice] = [m.message for m in smtp_sink.messages]
    assert notice["To"] == LEADS[0]
    assert notice["Subject"] == "[4Dustry] Outgoing mail is failing"
    body = notice.get_body(preferencelist=("plain",)).get_content()
    assert "554 5.7.139 Authentication unsuccessful" in body
    assert "What it means: Microsoft 365: SMTP AUTH is disabled" in body
    assert "Authenticated SMTP" in body and "OAuth2" in body
    assert "mailbot outbox retry --failed" in body
    assert "same mail server" in body
    bot.close()
