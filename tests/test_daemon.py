"""The running daemon against real servers: SMTP/LMTP listener, Dovecot IMAP, an SMTP sink."""

from __future__ import annotations

import random
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.context import open_context
from mailbot.outbox import deliver_due, make_transport
from mailbot.worker import process_pending
from tests.daemon_helpers import (
    DaemonProcess,
    ForkedDaemonProcess,
    InProcessDaemon,
    daemon_settings,
    wait_until,
)
from tests.helpers import ROOT, WARSAW_NOON, make_mail, write_config


def send(address: tuple[str, int], raw: bytes, rcpts: list[str] | None = None) -> None:
    with smtplib.SMTP(*address, timeout=10) as smtp:
        smtp.sendmail("jan@klient.pl", rcpts or ["pomoc@4dustry.com"], raw)


@pytest.fixture
def daemon(tmp_path: Path, smtp_sink):
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    yield running
    running.stop()


# -- SMTP/LMTP listener ------------------------------------------------------------------------


def test_listener_accepts_the_support_address_and_tags_and_stores_before_250(daemon) -> None:
    send(daemon.smtp_address, make_mail(), ["pomoc@4dustry.com", "POMOC+faktury@4dustry.com"])
    # sendmail returned: the 250 came, so the raw message is committed already.
    assert daemon.count("inbound") == 1
    [row] = daemon.store.rows("inbound")
    assert row["source"] == "smtp" and row["envelope_from"] == "jan@klient.pl"


def test_listener_is_no_relay(daemon) -> None:
    with smtplib.SMTP(*daemon.smtp_address, timeout=10) as smtp:
        for rcpt in (
            "kto@inny.pl",
            "pomoc@4dustry.com.evil.net",
            "pomoc@inny.pl",
            "kasia@4dustry.com",
        ):
            smtp.ehlo()
            smtp.mail("spammer@evil.net")
            code, _ = smtp.rcpt(rcpt)
            assert code == 550, rcpt
            smtp.rset()
    assert daemon.count("inbound") == 0


def test_listener_refuses_oversize_mail_with_552(tmp_path: Path, smtp_sink) -> None:
    settings = daemon_settings(smtp_sink, **{"inbound.smtp.max_message_size": '"20 KB"'})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("size") and int(smtp.esmtp_features["size"]) == 20_000
            big = make_mail(body="x" * 30_000)
            with pytest.raises(smtplib.SMTPResponseException) as info:
                smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], big)
            assert info.value.smtp_code == 552
        assert running.count("inbound") == 0
        send(running.smtp_address, make_mail())  # normal mail still fine
        assert running.count("inbound") == 1
    finally:
        running.stop()


def test_listener_answers_451_when_the_message_cannot_be_stored(daemon, monkeypatch) -> None:
    def full_disk(*args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(daemon.daemon.listener.intake, "_commit", full_disk)
    with pytest.raises(smtplib.SMTPDataError) as info:
        send(daemon.smtp_address, make_mail())
    assert info.value.smtp_code == 451


def test_lmtp_listener_answers_per_recipient(tmp_path: Path, smtp_sink) -> None:
    settings = daemon_settings(smtp_sink, **{"inbound.smtp.protocol": '"lmtp"'})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        # smtplib's LMTP reads one reply after DATA; RFC 2033 wants one per recipient, so talk
        # the protocol by hand.
        with socket.create_connection(running.smtp_address, timeout=10) as sock:
            replies = sock.makefile("rb")
            assert replies.readline().startswith(b"220")

            def command(line: bytes) -> bytes:
                sock.sendall(line + b"\r\n")
                reply = replies.readline()
                while reply[3:4] == b"-":
                    reply = replies.readline()
                return reply

            assert command(b"LHLO client.test").startswith(b"250")
            assert command(b"MAIL FROM:<jan@klient.pl>").startswith(b"250")
            assert command(b"RCPT TO:<pomoc@4dustry.com>").startswith(b"250")
            assert command(b"RCPT TO:<pomoc+pl@4dustry.com>").startswith(b"250")
            assert command(b"RCPT TO:<obcy@inny.pl>").startswith(b"550")
            assert command(b"DATA").startswith(b"354")
            sock.sendall(make_mail() + b".\r\n")
            per_recipient = [replies.readline(), replies.readline()]
            assert all(r.startswith(b"250 ") for r in per_recipient), per_recipient
            assert command(b"QUIT").startswith(b"221")
        assert running.count("inbound", source="lmtp") == 1
    finally:
        running.stop()


def test_mail_sent_to_the_listener_is_acknowledged_through_the_sink(daemon, smtp_sink) -> None:
    send(daemon.smtp_address, make_mail(sender="Jan <jan@klient.pl>"))
    daemon.wait_idle()
    acks = [m for m in smtp_sink.messages if "jan@klient.pl" in m.rcpt_tos]
    assert acks[0].message["Subject"].startswith("[4Dustry #1]")
    assert acks[0].message["Auto-Submitted"] == "auto-replied"


# -- IMAP --------------------------------------------------------------------------------------


def _tickets(running: InProcessDaemon) -> int:
    return running.count("tickets")


def test_mail_appended_to_dovecot_becomes_a_ticket_and_an_ack(tmp_path, dovecot, smtp_sink) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink, dovecot)).start()
    try:
        started = time.monotonic()
        dovecot.append(make_mail(sender="ewa@firma.pl"))
        wait_until(lambda: _tickets(running) == 1, 10, "ticket from IMAP")
        ticket_seconds = time.monotonic() - started
        wait_until(lambda: any("ewa@firma.pl" in m.rcpt_tos for m in smtp_sink.messages), 10)
        [stored] = dovecot.messages()
        assert "$MailbotStored" in stored.flags and "\\Seen" in stored.flags
        assert ticket_seconds < 3, ticket_seconds  # IDLE, not the 2 s poll: well within 3 s
    finally:
        running.stop()


def test_twenty_messages_waiting_at_start_are_all_picked_up(tmp_path, dovecot, smtp_sink) -> None:
    for n in range(20):
        dovecot.append(make_mail(sender=f"klient{n}@firma{n}.pl", subject=f"Sprawa {n}"))
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink, dovecot)).start()
    try:
        wait_until(lambda: _tickets(running) == 20, 20, "20 tickets")
        acks = wait_until(
            lambda: (
                len([m for m in smtp_sink.messages if "firma" in m.rcpt_tos[0]]) == 20
                and smtp_sink.messages
            ),
            20,
        )
        assert len({m.message["Message-ID"] for m in acks if "firma" in m.rcpt_tos[0]}) == 20
    finally:
        running.stop()


def test_processed_folder_receives_stored_mail(tmp_path, dovecot, smtp_sink) -> None:
    dovecot.create_folder("Processed")
    settings = daemon_settings(
        smtp_sink, dovecot, **{"inbound.imap.processed_folder": '"Processed"'}
    )
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        dovecot.append(make_mail())
        wait_until(lambda: len(dovecot.messages("Processed")) == 1, 10, "move to Processed")
        running.wait_idle()  # moved once stored; the worker may still be making the ticket
        assert dovecot.messages() == []
        assert _tickets(running) == 1
    finally:
        running.stop()


def test_dovecot_restart_mid_run_loses_nothing(tmp_path, dovecot, smtp_sink) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink, dovecot)).start()
    try:
        dovecot.append(make_mail(sender="a@firma-a.pl"))
        wait_until(lambda: _tickets(running) == 1, 10)
        dovecot.kill()  # connections dropped without a goodbye
        dovecot.start()
        for n in range(5):
            dovecot.append(make_mail(sender=f"b{n}@firma-b.pl"))
        wait_until(lambda: _tickets(running) == 6, 30, "all six after the restart")
        assert running.count("inbound") == 6
    finally:
        running.stop()


def test_uidvalidity_change_duplicates_nothing(tmp_path, dovecot, smtp_sink) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink, dovecot)).start()
    try:
        for n in range(3):
            dovecot.append(make_mail(sender=f"k{n}@firma.pl"))
        wait_until(lambda: _tickets(running) == 3, 15)
        wait_until(lambda: len(smtp_sink.messages) >= 3 + 3, 15, "acks and notifications")
        # The mailbox is rebuilt: new UIDVALIDITY, renumbered UIDs, and our keyword lost too.
        dovecot.reset_uidvalidity(renumber=True)
        with dovecot.client() as client:
            client.select_folder("INBOX")
            client.remove_flags(client.search("ALL"), [b"$MailbotStored", b"\\Seen"])
        dovecot.append(make_mail(sender="nowy@firma.pl"))
        wait_until(lambda: _tickets(running) == 4, 20, "the new message")
        wait_until(
            lambda: (
                not dovecot.messages()
                or all("$MailbotStored" in m.flags for m in dovecot.messages())
            ),
            10,
        )
        assert running.count("inbound") == 4
        assert running.count("outbox", template="ack") == 4
    finally:
        running.stop()


def test_imap_over_starttls_and_ssl(tmp_path, dovecot, smtp_sink) -> None:
    for mode, port in (("starttls", dovecot.port), ("ssl", dovecot.ssl_port)):
        directory = tmp_path / mode
        directory.mkdir()
        settings = daemon_settings(
            smtp_sink,
            dovecot,
            **{
                "inbound.imap.tls": f'"{mode}"',
                "inbound.imap.port": str(port),
                "inbound.imap.cafile": f'"{dovecot.cafile}"',
            },
        )
        running = InProcessDaemon(directory, settings).start()
        try:
            dovecot.append(make_mail(sender=f"tls-{mode}@firma.pl"))
            wait_until(lambda r=running: _tickets(r) == 1, 10, f"ticket over {mode}")
        finally:
            running.stop()


# -- outbox sender -----------------------------------------------------------------------------


def _outbox_setup(tmp_path: Path, smtp_sink):
    from tests.helpers import Mailbot

    bot = Mailbot(tmp_path, settings=daemon_settings(smtp_sink))
    bot.feed(make_mail())
    process_pending(bot.ctx)
    return bot


def test_sink_down_then_back_delivers_each_message_exactly_once(tmp_path, smtp_sink) -> None:
    bot = _outbox_setup(tmp_path, smtp_sink)
    rows = bot.ctx.store.count("outbox")
    smtp_sink.stop()
    now = datetime.now(UTC)
    transport = make_transport(bot.cfg)
    report = deliver_due(bot.ctx, transport, now)
    assert (report.sent, report.retried) == (0, rows)
    retry_at = bot.ctx.store.outbox.next_due()  # every row is pending
    assert retry_at is not None and retry_at > now + timedelta(seconds=20)  # backed off
    assert deliver_due(bot.ctx, transport, now + timedelta(seconds=5)).sent == 0  # not yet due
    smtp_sink.start()
    report = deliver_due(bot.ctx, transport, now + timedelta(minutes=2))
    transport.close()
    assert report.sent == rows
    assert len(smtp_sink.messages) == rows
    assert len({m.message["Message-ID"] for m in smtp_sink.messages}) == rows
    # Nothing is left to send: running again delivers nothing twice.
    assert deliver_due(bot.ctx, make_transport(bot.cfg), now + timedelta(hours=1)).sent == 0
    bot.close()


def test_4xx_is_retried_with_growing_backoff_and_5xx_is_final(tmp_path, smtp_sink) -> None:
    bot = _outbox_setup(tmp_path, smtp_sink)
    rows = bot.ctx.store.count("outbox")
    now = datetime.now(UTC)
    transport = make_transport(bot.cfg)
    smtp_sink.fail_with(451, "4.3.0 try later", times=rows)
    deliver_due(bot.ctx, transport, now)
    first = bot.ctx.store.outbox.next_due()
    smtp_sink.fail_with(452, "4.3.1 still busy", times=rows)
    deliver_due(bot.ctx, transport, now + timedelta(hours=1))
    second = bot.ctx.store.outbox.next_due()
    assert first is not None and second is not None
    assert (second - (now + timedelta(hours=1))) > (first - now)  # exponential
    smtp_sink.fail_with(550, "5.1.1 no such user", times=1)
    deliver_due(bot.ctx, transport, now + timedelta(hours=3))
    transport.close()
    failed = bot.ctx.store.rows("outbox", status="failed")
    assert len(failed) == 1 and "550" in failed[0]["last_error"] and failed[0]["attempts"] == 3
    assert len(smtp_sink.messages) == rows - 1
    events = bot.ctx.store.rows("events", kind="delivery-failed")
    assert len(events) == 1
    bot.close()


def test_smtp_transport_authenticates_with_a_secret_file(tmp_path, smtp_sink) -> None:
    secret = tmp_path / "relay-password"
    secret.write_text(smtp_sink.password + "\n")
    from tests.helpers import Mailbot

    settings = daemon_settings(
        smtp_sink,
        **{
            "outbound.username": f'"{smtp_sink.username}"',
            "outbound.password_file": f'"{secret}"',
            "outbound.starttls": "true",
            "outbound.cafile": f'"{smtp_sink.cafile}"',
        },
    )
    bot = Mailbot(tmp_path, settings=settings)
    bot.feed(make_mail())
    bot.run()
    assert smtp_sink.messages and all(m.auth_user == smtp_sink.username for m in smtp_sink.messages)
    assert all(m.tls for m in smtp_sink.messages)
    bot.close()


def test_pending_work_is_what_run_once_still_has_to_do(bot) -> None:
    idle = {"inbound": 0, "outbox": 0, "timers": 0}
    assert bot.ctx.store.pending_work(WARSAW_NOON) == idle
    bot.feed(make_mail())
    assert bot.ctx.store.pending_work(WARSAW_NOON) == idle | {"inbound": 1}
    process_pending(bot.ctx, WARSAW_NOON)
    left = bot.ctx.store.pending_work(WARSAW_NOON)
    assert left["inbound"] == 0 and left["outbox"] >= 1  # the ack and the agents' notices
    bot.run()
    assert bot.ctx.store.pending_work(WARSAW_NOON) == idle  # the SLA timers are due later
    assert bot.ctx.store.pending_work(WARSAW_NOON + timedelta(days=30))["timers"] >= 1


# -- lifecycle ---------------------------------------------------------------------------------


def _process_config(tmp_path: Path, smtp_sink, **more: str) -> Path:
    return write_config(tmp_path, settings=daemon_settings(smtp_sink, **more))


def test_sigterm_stops_cleanly_within_seconds(tmp_path, smtp_sink) -> None:
    proc = DaemonProcess(_process_config(tmp_path, smtp_sink)).start()
    send((proc.cfg.smtp.host, proc.cfg.smtp.port), make_mail())
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - started < 5
    assert "msg=stopped" in proc.log()


def test_sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad(
    tmp_path, smtp_sink
) -> None:
    path = _process_config(tmp_path, smtp_sink)
    proc = DaemonProcess(path).start()
    try:
        good = path.read_text()
        path.write_text(good.replace('timezone = "Europe/Warsaw"', 'timezone = "Mars/Olympus"'))
        proc.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in proc.log(), 10)
        assert "Mars/Olympus" in proc.log()
        send((proc.cfg.smtp.host, proc.cfg.smtp.port), make_mail())  # still working
        wait_until(lambda: smtp_sink.messages, 10, "ack after a refused reload")
        path.write_text(good.replace('name = "4Dustry"', 'name = "4D"'))
        proc.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in proc.log(), 10)
        send((proc.cfg.smtp.host, proc.cfg.smtp.port), make_mail(sender="ola@firma.pl"))
        wait_until(
            lambda: any(m.message["Subject"].startswith("[4D #2]") for m in smtp_sink.messages), 10
        )
    finally:
        proc.stop()


def test_logs_are_one_line_per_event_with_ticket_and_message_id(tmp_path, smtp_sink) -> None:
    proc = DaemonProcess(_process_config(tmp_path, smtp_sink)).start()
    try:
        mid = "<5F3A1C2B-8D4E-4F6A-9B7C-1E2D3F4A5B6C@klient.pl>"  # Apple Mail: upper case
        send((proc.cfg.smtp.host, proc.cfg.smtp.port), make_mail(message_id=mid))
        wait_until(lambda: "msg=sent" in proc.log(), 10)
    finally:
        proc.stop()
    lines = proc.log().splitlines()
    processed = [line for line in lines if "msg=processed" in line]
    assert processed and "ticket=1" in processed[0] and f"message_id={mid}" in processed[0]
    assert all(line.startswith("time=") for line in lines), lines[:5]
    sent = [line for line in lines if "msg=sent" in line]
    assert sent and all("ticket=1" in line and "message_id=<mb." in line for line in sent)


def test_secrets_never_reach_the_log(tmp_path, dovecot, smtp_sink) -> None:
    settings = daemon_settings(smtp_sink, dovecot)
    proc = DaemonProcess(write_config(tmp_path, settings=settings)).start()
    try:
        dovecot.append(make_mail())
        wait_until(lambda: "msg=sent" in proc.log(), 15)
        proc.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded" in proc.log(), 10)
    finally:
        proc.stop()
    assert dovecot.password not in proc.log()


@pytest.mark.slow
def test_kill_9_during_a_stream_loses_nothing_and_acks_once(tmp_path, smtp_sink) -> None:
    """Kill the daemon at random moments (25 times) while customers keep writing."""
    # Hundreds of customers a minute is a flood: the breaker is off, every one must get an ack.
    no_breaker = {"limits.auto_replies_per_minute": "0"}
    proc = ForkedDaemonProcess(_process_config(tmp_path, smtp_sink, **no_breaker)).start()
    address = (proc.cfg.smtp.host, proc.cfg.smtp.port)
    accepted: list[str] = []
    stop = threading.Event()

    def customers() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sender = f"klient{n}@firma{n}.pl"
            try:
                send(address, make_mail(sender=sender, subject=f"Sprawa {n}"))
            except (OSError, smtplib.SMTPException):
                time.sleep(0.02)  # daemon down: the client retries later, as MTAs do
                continue
            accepted.append(sender)

    client = threading.Thread(target=customers)
    client.start()
    rng = random.Random(20261125)
    try:
        for _ in range(25):
            time.sleep(rng.uniform(0.05, 0.6))
            proc.kill()
            proc.start()
        time.sleep(0.5)
    finally:
        stop.set()
        client.join()
    watcher = open_context(proc.cfg, migrate=False)
    try:
        # Mail committed just before a kill was never acknowledged to the client (no 250), so
        # it is not in `accepted`, yet it became a ticket: wait for the outbox to drain.
        wait_until(
            lambda: (
                watcher.store.count("inbound", status="pending") == 0
                and watcher.store.count("outbox", status="pending") == 0
                and len({r for m in smtp_sink.messages for r in m.rcpt_tos if "klient" in r})
                >= len(accepted)
            ),
            # A row that was being sent at a kill waits 5 s, doubling, before it goes again
            # (it may have been delivered): allow for two such waits on a loaded machine.
            90,
            "every accepted message processed and its ack delivered",
        )
    finally:
        watcher.close()
        proc.stop()
    ctx = open_context(proc.cfg)
    try:
        stored = {r["requester"] for r in ctx.store.rows("tickets")}
        assert set(accepted) <= stored  # every 250 became a ticket
        assert ctx.store.count("tickets") == len(stored)  # none twice
        acks = ctx.store.rows("outbox", template="ack")
        assert len(acks) == len({a["to_addr"] for a in acks})  # one ack per customer
    finally:
        ctx.close()
    delivered = [m.message["Message-ID"] for m in smtp_sink.messages if "klient" in m.rcpt_tos[0]]
    # A kill between the relay's 250 and our commit may resend that one message, with the same
    # Message-ID (which receivers deduplicate); an ack is never generated twice.
    assert len(delivered) - len(set(delivered)) <= 25
    assert len(set(delivered)) == len(acks)
    assert len(accepted) > 20


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    import sys

    unit = (ROOT / "systemd" / "mailbot.service").read_text()
    assert "Type=notify" in unit and "WatchdogSec=" in unit and "ProtectSystem=strict" in unit
    # Verify the unit as installed: its ExecStart must name an existing program.
    installed = unit.replace(
        "/opt/mailbot/.venv/bin/mailbot", str(Path(sys.executable).with_name("mailbot"))
    )
    (tmp_path / "mailbot.service").write_text(installed)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "mailbot.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if "mailbot.service" in line]
    assert result.returncode == 0 and not problems, result.stderr
