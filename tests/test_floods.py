"""Floods and loops: robots answering from new addresses, mail storms, null senders, forgeries."""

from __future__ import annotations

import smtplib

from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import make_mail


def test_null_envelope_sender_gets_no_answer_over_smtp(tmp_path, smtp_sink) -> None:
    """`MAIL FROM:<>` marks bounces and autoresponders (RFC 3834, RFC 5321) even when the
    message itself carries no sign of it: no Return-Path, no Auto-Submitted."""
    running = InProcessDaemon(tmp_path, daemon_settings(smtp_sink)).start()
    responder = "piotr@hurtownia.pl"
    try:
        vacation = make_mail(
            sender=f"Piotr Nowak <{responder}>",
            subject="Dziękuję za wiadomość",
            body="Wracam 7 grudnia. W pilnych sprawach proszę dzwonić pod numer 22 123 45 67.",
        )
        with smtplib.SMTP(*running.smtp_address) as smtp:
            smtp.sendmail("", ["pomoc@4dustry.com"], vacation)  # MAIL FROM:<>
            smtp.sendmail("jan@klient.pl", ["pomoc@4dustry.com"], make_mail())
        running.wait_idle()
        stored = running.count("inbound")
        null_envelope = running.count("inbound", envelope_from="<>")
    finally:
        running.stop()
    recipients = [rcpt for d in smtp_sink.messages for rcpt in d.rcpt_tos]
    assert "jan@klient.pl" in recipients  # the same listener answers a person
    assert responder not in recipients
    assert stored == 2 and null_envelope == 1  # kept, as it came
