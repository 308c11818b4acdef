"""Backups: an online copy under incoming mail, restore into a fresh install, verify."""

from __future__ import annotations

import os
import shutil
import smtplib
import stat
import subprocess
import sys
import threading
import time
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.store import Store
from tests.daemon_helpers import DaemonProcess, InProcessDaemon, daemon_settings, wait_until
from tests.helpers import ROOT, make_mail, write_config

# CLI commands set up logging; the root logger is put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


def thunderbird_mail_with_pdf(n: int) -> tuple[bytes, str]:
    """Thunderbird: UUID-shaped Message-ID, User-Agent, a PDF in multipart/mixed."""
    message_id = f"<0c3e6a1b-7d2f-4e8a-9b5c-{n:012d}@firma{n}.pl>"
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = f"Klient {n} <klient{n}@firma{n}.pl>"
    msg["To"] = "pomoc@4dustry.com"
    msg["Subject"] = f"Faktura {n} – prośba o korektę"
    msg["Message-ID"] = message_id
    msg["User-Agent"] = "Mozilla Thunderbird"
    msg.set_content(f"Dzień dobry,\nw załączeniu faktura nr {n}.\n\nPozdrawiam\nKlient {n}\n")
    pdf = b"%PDF-1.4\n" + f"faktura {n} ".encode() * 200 + b"\n%%EOF\n"
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"FV_{n}.pdf")
    return msg.as_bytes(), message_id


def _run(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_backup_under_incoming_mail_restores_into_a_fresh_directory_and_verifies(
    tmp_path, smtp_sink, capsys
) -> None:
    (tmp_path / "live").mkdir()
    running = InProcessDaemon(tmp_path / "live", daemon_settings(smtp_sink)).start()
    accepted: list[tuple[float, str]] = []
    stop = threading.Event()

    def customers() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 2:
                raw, message_id = thunderbird_mail_with_pdf(n)
            else:  # Gmail: CA…@mail.gmail.com Message-ID, plain text
                message_id = make_msgid(idstring=f"CAJ{n}x", domain="mail.gmail.com")
                raw = make_mail(sender=f"<ola{n}@gmail.com>", subject=f"Pytanie {n}",
                                message_id=message_id)  # fmt: skip
            with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
                smtp.sendmail("klient@firma.pl", ["pomoc@4dustry.com"], raw)
            accepted.append((time.monotonic(), message_id))

    client = threading.Thread(target=customers)
    client.start()
    try:
        wait_until(lambda: len(accepted) >= 15, 30, "mail flowing")
        started = time.monotonic()
        assert _run(running.config_path, "backup", str(tmp_path / "backup")) == 0
        finished = time.monotonic()
        wait_until(lambda: sum(t > finished for t, _ in accepted) >= 5, 30, "mail after backup")
    finally:
        stop.set()
        client.join()
        running.stop()
    backup = tmp_path / "backup"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o700
    assert stat.S_IMODE((backup / "mailbot.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((backup / "secret.key").stat().st_mode) == 0o600

    (tmp_path / "fresh").mkdir()
    fresh = write_config(tmp_path / "fresh")
    capsys.readouterr()
    assert _run(fresh, "restore", str(backup)) == 0, capsys.readouterr().err
    assert _run(fresh, "verify") == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "integrity and foreign keys ok" in out and "messages checked" in out

    restored = Store(tmp_path / "fresh" / "data" / "mailbot.sqlite3", migrate=False)
    try:
        ids = {row["message_id"] for row in restored.rows("inbound")}
        # Everything acknowledged with 250 before the backup began is in it.
        assert {mid for t, mid in accepted if t < started} <= ids
        assert not {mid for t, mid in accepted if t > finished} & ids  # a snapshot, not later
        # Every ticket comes back with its messages, raw mail and attachment files.
        for ticket in restored.rows("tickets"):
            messages = restored.rows("messages", ticket_id=ticket["id"], direction="in")
            assert messages, ticket["id"]
            for message in messages:
                assert restored.inbound.raw(message["inbound_id"])
        attachments = restored.rows("attachments")
        assert attachments
        for row in attachments:
            assert (tmp_path / "fresh" / "data" / row["path"]).read_bytes().startswith(b"%PDF")
        processed = restored.rows("inbound", status="processed")
        assert processed and all(restored.tickets.exists(r["ticket_id"]) for r in processed)
    finally:
        restored.close()
    # The secret came along: tokens in mail sent before the restore still verify.
    live_secret = (tmp_path / "live" / "data" / "secret.key").read_bytes()
    assert (tmp_path / "fresh" / "data" / "secret.key").read_bytes() == live_secret


def test_restore_refuses_a_running_daemon_and_existing_data_unless_forced(
    tmp_path, smtp_sink, capsys
) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    try:
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], make_mail())
        running.wait_idle()
        assert _run(running.config_path, "backup", str(tmp_path / "b1")) == 0
        assert _run(running.config_path, "backup", str(tmp_path / "b1")) == 1  # never over one
        capsys.readouterr()
        assert _run(running.config_path, "restore", str(tmp_path / "b1")) == 1
        assert "is running" in capsys.readouterr().err
    finally:
        running.stop()
    assert _run(running.config_path, "restore", str(tmp_path / "b1")) == 1
    assert "--force" in capsys.readouterr().err
    assert _run(running.config_path, "restore", "--force", str(tmp_path / "b1")) == 0
    assert "restored 1 tickets" in capsys.readouterr().out
    assert _run(running.config_path, "verify") == 0


def test_verify_names_changed_raw_mail_and_damaged_attachments(tmp_path, capsys) -> None:
    config = write_config(tmp_path)
    raw, _ = thunderbird_mail_with_pdf(1)
    (tmp_path / "mail.eml").write_bytes(raw)
    (tmp_path / "other.eml").write_bytes(make_mail())
    assert _run(config, "import", str(tmp_path / "mail.eml"), str(tmp_path / "other.eml")) == 0
    assert _run(config, "verify") == 0
    store = Store(tmp_path / "data" / "mailbot.sqlite3", migrate=False)
    try:
        [attachment] = store.rows("attachments")
        second = store.rows("inbound")[1]
        store.inbound.update(second["id"], {"raw": second_raw(store, second["id"])})
    finally:
        store.close()
    path = tmp_path / "data" / attachment["path"]
    path.write_bytes(path.read_bytes().replace(b"faktura", b"FAKTURA", 1))
    capsys.readouterr()
    assert _run(config, "verify") == 1
    err = capsys.readouterr().err
    assert f"inbound {second['id']}: raw bytes do not match" in err
    assert f"attachment {attachment['path']}: does not match" in err


def second_raw(store: Store, inbound_id: int) -> bytes:
    """The message as stored with one word changed, as a disk error or a bad edit would."""
    return store.inbound.raw(inbound_id).replace(b"problem", b"PROBLEM", 1)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_backup_timer_and_service_verify(tmp_path: Path) -> None:
    service = (ROOT / "systemd" / "mailbot-backup.service").read_text()
    timer = (ROOT / "systemd" / "mailbot-backup.timer").read_text()
    assert "Type=oneshot" in service and " backup " in service and "UMask=0077" in service
    assert "OnCalendar=" in timer and "Persistent=true" in timer
    installed = service.replace(
        "/opt/mailbot/.venv/bin/mailbot", str(Path(sys.executable).with_name("mailbot"))
    )
    (tmp_path / "mailbot-backup.service").write_text(installed)
    (tmp_path / "mailbot-backup.timer").write_text(timer)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(p) for p in sorted(tmp_path.glob("mailbot-*")))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if "mailbot-backup" in line]
    assert result.returncode == 0 and not problems, result.stderr


def test_a_second_daemon_on_the_same_data_directory_refuses_to_start(tmp_path, smtp_sink) -> None:
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    try:
        # Same data directory, another SMTP port: only the lock can stop it.
        (tmp_path / "second").mkdir()
        second_config = write_config(tmp_path / "second", settings=daemon_settings(smtp_sink))
        text = second_config.read_text().replace(
            'data_dir = "data"', f'data_dir = "{tmp_path / "data"}"'
        )
        second_config.write_text(text)
        second = DaemonProcess(second_config).start(wait=False)
        assert second.wait(20) == 1
        assert "another mailbot uses this data directory" in second.log()
        assert f"process {os.getpid()}" in second.log()
    finally:
        running.stop()
