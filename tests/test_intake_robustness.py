"""Intake under stress: a full disk, an IMAP server dying during IDLE, SMTP connection floods."""

from __future__ import annotations

import email
import errno
import logging
import smtplib
import socket
import sqlite3
import time
from email import policy
from pathlib import Path

import pytest

from mailbot import attachments, config
from mailbot.sources.imap import open_client
from tests.daemon_helpers import InProcessDaemon, daemon_settings, wait_until
from tests.helpers import make_mail, write_config


def outlook_mail_with_invoice() -> bytes:
    """An Outlook desktop message with a PDF attached, as Outlook 365 writes it."""
    raw = make_mail(
        sender="Katarzyna Nowak <k.nowak@stalex.pl>",
        subject="Faktura do zamówienia 4471",
        body="Dzień dobry,\r\n\r\nw załączniku faktura. Proszę o potwierdzenie.\r\n\r\n"
        "Pozdrawiam\r\nKatarzyna Nowak",
        message_id="<DB9PR04MB8412C5E0F3B1A2C4D5E6F7A8B9@DB9PR04MB8412.eurprd04.prod.outlook.com>",
        headers={
            "Thread-Topic": "Faktura do zamówienia 4471",
            "Thread-Index": "AdlQm2b3xYz1k0WcT8Kq4f5n7R2h1A==",
            "X-MS-Has-Attach": "yes",
            "X-MS-TNEF-Correlator": "",
            "Content-Language": "pl-PL",
        },
    )
    msg = email.message_from_bytes(raw, policy=policy.default)
    msg.add_attachment(
        b"%PDF-1.7 faktura 4471", maintype="application", subtype="pdf", filename="FV_4471.pdf"
    )
    return msg.as_bytes()


# -- the pipeline: a full disk ---------------------------------------------------------------


@pytest.mark.parametrize("failures", [1, 12])
def test_a_full_disk_delays_mail_but_never_quarantines_it(bot, monkeypatch, failures) -> None:
    save = attachments.save
    left = {"failures": failures}

    def full_disk(data_dir: Path, data: bytes) -> tuple[str, str]:
        if left["failures"]:
            left["failures"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(data_dir, data)

    monkeypatch.setattr(attachments, "save", full_disk)
    inbound_id = bot.feed(outlook_mail_with_invoice())
    later = bot.feed(make_mail(sender="jan@klient.pl", subject="Druga sprawa"))
    for _ in range(failures):  # more passes than [mailbot] max_attempts (3) allows failures
        summary = bot.run()
        assert "waiting: disk full" in summary
        assert bot.inbound(inbound_id)["status"] == "pending"
        assert bot.inbound(inbound_id)["attempts"] == 0
        assert bot.inbound(later)["status"] == "pending"  # order kept: nothing overtakes it
        assert bot.tickets() == []
    assert "waiting" not in bot.run()  # the disk has room again
    assert bot.inbound(inbound_id)["status"] == "processed"
    assert bot.inbound(later)["status"] == "processed"
    assert bot.ctx.store.count("inbound", status="quarantined") == 0
    [att] = bot.ctx.store.rows("attachments")
    assert (bot.cfg.mailbot.data_dir / att["path"]).read_bytes() == b"%PDF-1.7 faktura 4471"
    ack = next(m for m in bot.outbox() if m["To"] == "k.nowak@stalex.pl")
    assert "Faktura do zamówienia 4471" in ack["Subject"]


@pytest.mark.parametrize(
    ("error", "waiting"),
    [
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
        (OSError(errno.EMFILE, "Too many open files"), "too many open files"),
        (sqlite3.OperationalError("database is locked"), "database locked"),
        (sqlite3.OperationalError("database or disk is full"), "disk full"),
    ],
)
def test_other_machine_troubles_wait_too(bot, monkeypatch, error, waiting) -> None:
    save = attachments.save
    left = {"failures": 5}

    def troubled(data_dir: Path, data: bytes) -> tuple[str, str]:
        if left["failures"]:
            left["failures"] -= 1
            raise error
        return save(data_dir, data)

    monkeypatch.setattr(attachments, "save", troubled)
    inbound_id = bot.feed(outlook_mail_with_invoice())
    for _ in range(5):
        assert f"waiting: {waiting}" in bot.run()
    bot.run()
    assert bot.inbound(inbound_id)["status"] == "processed"
    assert len(bot.tickets()) == 1


def test_a_broken_message_is_still_quarantined_after_max_attempts(bot, monkeypatch) -> None:
    def broken(data_dir: Path, data: bytes) -> tuple[str, str]:
        raise ValueError("not a disk problem")

    monkeypatch.setattr(attachments, "save", broken)
    inbound_id = bot.feed(outlook_mail_with_invoice())
    bot.run()
    assert bot.inbound(inbound_id)["status"] == "quarantined"
    assert bot.inbound(inbound_id)["attempts"] == 3


def test_the_daemon_logs_a_full_disk_once_and_resumes_when_it_clears(
    tmp_path: Path, smtp_sink, monkeypatch, caplog
) -> None:
    save = attachments.save
    full = {"disk": True}

    def full_disk(data_dir: Path, data: bytes) -> tuple[str, str]:
        if full["disk"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(data_dir, data)

    monkeypatch.setattr(attachments, "save", full_disk)
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    try:
        with caplog.at_level(logging.WARNING, logger="mailbot"):
            send_smtp(running.smtp_address, outlook_mail_with_invoice())
            time.sleep(4)  # several tries while the disk stays full
            assert running.count("inbound", status="pending") == 1
            full["disk"] = False
            wait_until(lambda: running.count("inbound", status="processed") == 1, 40, "resume")
        waits = [r for r in caplog.records if r.getMessage() == "waiting: disk full"]
        assert len(waits) == 1
        assert running.count("inbound", status="quarantined") == 0
        assert running.count("tickets") == 1
    finally:
        running.stop()


def send_smtp(address: tuple[str, int], raw: bytes) -> None:
    with smtplib.SMTP(*address, timeout=10) as smtp:
        smtp.sendmail("k.nowak@stalex.pl", ["pomoc@4dustry.com"], raw)


def _tickets(running: InProcessDaemon) -> int:
    return running.count("tickets")


# -- IMAP: a server killed during IDLE -----------------------------------------------------------


def test_mail_is_fetched_within_seconds_after_the_imap_server_comes_back(
    tmp_path: Path, dovecot, smtp_sink
) -> None:
    settings = daemon_settings(smtp_sink, dovecot, **{"inbound.imap.poll_interval": "61"})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        dovecot.append(make_mail(sender="anna@firma-a.pl", subject="Pierwsza sprawa"))
        wait_until(lambda: _tickets(running) == 1, 10, "the first message")
        time.sleep(1)  # the source is IDLE now
        dovecot.kill()  # every Dovecot process gone at once, without a goodbye
        time.sleep(3)
        dovecot.start()
        dovecot.append(make_mail(sender="piotr@firma-b.pl", subject="Druga sprawa"))
        returned = time.monotonic()
        wait_until(lambda: running.count("inbound") == 2, 20, "the message after the restart")
        assert time.monotonic() - returned < 10
    finally:
        running.stop()


def test_imap_connections_use_tcp_keepalive(tmp_path: Path, dovecot) -> None:
    """A server that vanishes without closing (power cut, network gone) is noticed by TCP."""
    cfg = config.load(write_config(tmp_path, "", daemon_settings(None, dovecot)))
    client = open_client(cfg.imap)
    try:
        sock = client.socket()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 120
    finally:
        client.shutdown()


# -- SMTP: a flood of idle connections --------------------------------------------------------


def _greeting(address: tuple[str, int]) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(address, timeout=10)
    return sock, sock.makefile("rb").readline()


def test_connections_beyond_max_sessions_get_421_and_idle_ones_time_out(
    tmp_path: Path, smtp_sink
) -> None:
    settings = daemon_settings(
        smtp_sink, **{"inbound.smtp.max_sessions": "3", "inbound.smtp.idle_timeout": "2"}
    )
    running = InProcessDaemon(tmp_path, settings).start()
    idle: list[socket.socket] = []
    try:
        for _ in range(3):
            sock, greeting = _greeting(running.smtp_address)
            idle.append(sock)
            assert greeting.startswith(b"220 ")
        extra, refusal = _greeting(running.smtp_address)
        assert refusal == b"421 4.7.0 too many connections, try again later\r\n"
        assert extra.recv(100) == b""  # and closed
        extra.close()
        with pytest.raises(smtplib.SMTPConnectError) as info:
            send_smtp(running.smtp_address, outlook_mail_with_invoice())
        assert info.value.smtp_code == 421
        assert running.count("inbound") == 0
        # The silent connections are closed after idle_timeout; real mail gets through again.
        for sock in idle:
            sock.settimeout(10)
            assert sock.recv(100) == b""
        send_smtp(running.smtp_address, outlook_mail_with_invoice())
        assert running.count("inbound") == 1
        # A slot is free again as soon as a client says goodbye.
        idle = [_greeting(running.smtp_address)[0] for _ in range(2)]
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.noop()
        sessions = running.daemon.listener.sessions
        wait_until(lambda: sessions.open == 2, 5, "the goodbye to free its slot")
        send_smtp(running.smtp_address, make_mail(sender="jan@klient.pl"))
        assert running.count("inbound") == 2
    finally:
        for sock in idle:
            sock.close()
        running.stop()


def test_a_slow_upload_is_not_an_idle_connection(tmp_path: Path, smtp_sink) -> None:
    """idle_timeout is about silence: mail trickling in over a slow link for longer still
    arrives (a 25 MB message takes minutes over a slow line)."""
    settings = daemon_settings(smtp_sink, **{"inbound.smtp.idle_timeout": "1"})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        raw = outlook_mail_with_invoice()
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.ehlo("mx.stalex.pl")
            smtp.mail("k.nowak@stalex.pl")
            smtp.rcpt("pomoc@4dustry.com")
            smtp.putcmd("data")
            assert smtp.getreply()[0] == 354
            assert smtp.sock is not None
            chunks = [raw[i : i + 200] for i in range(0, len(raw), 200)]
            started = time.monotonic()
            for chunk in chunks[:-1]:
                smtp.sock.sendall(chunk)
                time.sleep(2.5 / len(chunks))  # the whole message takes 2.5 idle_timeouts
            smtp.sock.sendall(chunks[-1] + b"\r\n.\r\n")
            code, _ = smtp.getreply()
            assert code == 250 and time.monotonic() - started > 2
        assert running.count("inbound") == 1
    finally:
        running.stop()


def test_smtp_limits_are_configurable_and_validated(tmp_path: Path) -> None:
    cfg = config.load(write_config(tmp_path, "", {}))
    assert cfg.smtp.max_sessions == 100 and cfg.smtp.idle_timeout == 60.0
    with pytest.raises(config.ConfigError) as info:
        config.load(write_config(tmp_path, "", {"inbound.smtp.max_sessions": "0"}))
    assert "max_sessions" in str(info.value)
