"""Metrics: the Prometheus endpoint of a running daemon, `mailbot stats`, and the tally."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbot import stats
from mailbot.cli import main
from mailbot.store import Store
from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import WARSAW_NOON, make_mail
from tests.servers import free_port
from tests.test_agents import gmail_reply, notification

# Outlook desktop and Gmail shapes, and an Exchange out-of-office answer (never answered).
OUTLOOK = make_mail(
    sender="Anna Zielińska <anna.zielinska@hurtownia-zielinski.pl>",
    message_id="<DB9PR05MB8123A1B2C3D4E5F6A7B8C9D0E1F2A3B4@DB9PR05MB8123.eurprd05.prod.outlook.com>",
    headers={"Thread-Index": "AdnQx1yZAbCdEfGhIjKlMnOpQrStUv==", "X-MS-Has-Attach": ""},
)
GMAIL = make_mail(
    sender="Piotr Lis <piotr.lis@gmail.com>",
    subject="Brak dostawy",
    message_id="<CAKx7pQ2mF3vYq+Zr9dW1b0N_sT4uHc8=jLkE5gA6oPiR@mail.gmail.com>",
)
OUT_OF_OFFICE = make_mail(
    sender="Marek Nowak <marek@klient.pl>",
    subject="Automatyczna odpowiedź: Problem z zamówieniem",
    headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
)


# CLI commands set up logging; the root logger is put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_endpoint_of_a_running_daemon_counts_mail_and_matches_stats(
    tmp_path, smtp_sink, capsys
) -> None:
    port = free_port()
    settings = daemon_settings(smtp_sink, **{"metrics.listen": f'"127.0.0.1:{port}"'})
    running = InProcessDaemon(tmp_path, settings).start()
    try:
        smtp_sink.fail_with(550, "5.1.1 mailbox unavailable", times=1)  # the first ack fails
        with smtplib.SMTP(*running.smtp_address, timeout=10) as smtp:
            for raw in (OUTLOOK, GMAIL, OUT_OF_OFFICE):
                smtp.sendmail("klient@example.pl", ["pomoc@4dustry.com"], raw)
        running.wait_idle()
        figures = scrape(port)
    finally:
        running.stop()

    def value(name: str, **labels: str) -> float:
        return figures[(name, frozenset(labels.items()))]

    assert value("mailbot_inbound_total", source="smtp", outcome="processed") == 2
    assert value("mailbot_inbound_total", source="smtp", outcome="ignored") == 1
    assert value("mailbot_tickets_opened_total") == 2
    assert value("mailbot_tickets_closed_total") == 0
    assert value("mailbot_outgoing_total", template="ack", status="sent") == 1
    assert value("mailbot_outgoing_total", template="ack", status="failed") == 1
    assert value("mailbot_intake_to_ack_seconds_count") == 1
    assert value("mailbot_intake_to_ack_seconds_bucket", le="60.0") == 1  # within a minute
    # Gauges come from the database at scrape time.
    assert value("mailbot_unanswered_tickets") == 2
    assert value("mailbot_outbox_failed") == 1 and value("mailbot_outbox_pending") == 0
    assert value("mailbot_quarantined_messages") == 0
    assert 0 <= value("mailbot_oldest_unanswered_age_seconds") < 60
    assert value("mailbot_next_sla_breach_seconds") > 24 * 3600  # two business days ahead
    assert value("process_resident_memory_bytes") > 0

    capsys.readouterr()
    assert main(["--config", str(running.config_path), "stats", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["inbound"]["by_source"]["smtp"] == {"ignored": 1, "processed": 2}
    assert doc["tickets"]["opened"] == 2 and doc["tickets"]["unanswered"] == 2
    assert doc["outbox"]["failed"] == 1
    for (name, labels), count in figures.items():  # every template, as the endpoint counted
        if name == "mailbot_outgoing_total":
            row = dict(labels)
            assert doc["outbox"]["by_template"][row["template"]][row["status"]] == count
    assert doc["intake_to_ack_seconds"]["count"] == 1


def test_stats_gauges_follow_the_clock(bot) -> None:
    bot.deliver(OUTLOOK, now=WARSAW_NOON)
    bot.deliver(GMAIL, now=WARSAW_NOON + timedelta(minutes=30))
    bot.feed(b"not a mail at all\x00" * 3, now=WARSAW_NOON + timedelta(minutes=40))
    bot.run(WARSAW_NOON + timedelta(minutes=40))
    now = WARSAW_NOON + timedelta(hours=1)
    doc = stats.build(bot.ctx.store, now)
    tickets = doc["tickets"]
    assert tickets["unanswered"] == 2
    assert tickets["oldest_unanswered_seconds"] == 3600  # the Outlook mail, an hour ago
    first = bot.tickets()[0]
    due = datetime.fromisoformat(first["first_response_due"])
    assert tickets["next_breach_seconds"] == (due - now).total_seconds()
    assert doc["inbound"]["quarantined"] == 1
    text = stats.render(doc)
    assert "2 opened, 0 closed, 2 unanswered (oldest 60 min)" in text
    assert "1 in quarantine" in text


def test_figures_of_a_rolled_back_transaction_are_never_counted(tmp_path) -> None:
    handed: list = []
    store = Store(tmp_path / "mailbot.sqlite3")
    store.tally.sink = handed.extend
    try:
        with store.atomic():
            store.tally.add("tickets_opened")
            with pytest.raises(RuntimeError), store.atomic():  # one message's savepoint fails
                store.tally.add("tickets_opened")
                raise RuntimeError("plan could not be written")
            assert handed == []  # nothing before the commit
        assert handed == [("tickets_opened", (), 1.0)]
        with pytest.raises(OSError), store.atomic():  # the whole group fails (disk full)
            store.tally.add("inbound", "smtp", "processed")
            raise OSError("disk full")
        with store.atomic():
            pass
        assert handed == [("tickets_opened", (), 1.0)]  # retried later: counted once, then
    finally:
        store.close()


def test_pipeline_scheduler_and_outbox_hand_their_figures_over_at_commit(bot) -> None:
    figures: list = []
    bot.ctx.store.tally.sink = figures.extend
    bot.feed(OUTLOOK, now=WARSAW_NOON)
    bot.run(WARSAW_NOON + timedelta(seconds=90))  # the worker was busy for a minute and a half
    ticket = bot.tickets()[0]
    due = datetime.fromisoformat(ticket["first_response_due"])
    bot.run(due + timedelta(minutes=1))  # nobody answered: the breach fires
    bot.run(due + timedelta(minutes=2))  # and only once
    note = notification(bot)
    bot.deliver(gmail_reply(note, "anna@4dustry.com", "#zamknij\nWysłaliśmy brakujący towar."),
                now=due + timedelta(hours=1))  # fmt: skip
    bot.run(due + timedelta(hours=1))
    names = [(name, labels) for name, labels, _ in figures]
    assert names.count(("sla_breaches", ())) == 1
    assert names.count(("tickets_opened", ())) == 1
    assert names.count(("tickets_closed", ())) == 1
    assert names.count(("inbound", ("test", "processed"))) == 2
    outgoing = {labels for name, labels in names if name == "outgoing"}
    assert outgoing == {("ack", "sent"), ("agent_new", "sent"), ("sla_breach", "sent"),
                        ("reply", "sent")}  # fmt: skip
    [latency] = [value for name, _, value in figures if name == "ack_latency"]
    assert latency == 90.0  # from the mail's arrival to the ack's delivery
