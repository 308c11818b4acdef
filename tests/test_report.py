"""`mailbot report`: SLA compliance in total, per language and per agent who answered first."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from mailbot import report
from mailbot.cli import main
from tests.helpers import Mailbot, make_mail
from tests.test_sla_timers import ANNA, TOMASZ, agent_says, warsaw

ENGLISH = "Hello, could you please send us the invoice for the last order? Thank you."
REPORT_TIME = warsaw(2026, 12, 4, 12, 0)  # Friday noon


@pytest.fixture
def history(bot: Mailbot) -> Mailbot:
    """Five tickets with known first-response times (no topic: both agents are notified).

    #1 pl Mon 10:00, Anna answers Mon 12:00: 2 business hours, in time.
    #2 en Mon 10:30, Tomasz answers Thu 10:30: 7.5 + 10 + 10 + 2.5 = 30 h, due Wed: breached.
    #3 pl Mon 11:00, unanswered on Friday: due Wed 11:00 passed, breached.
    #4 pl Tue 09:00, Anna answers Tue 13:00: 4 h, in time.
    #5 pl Fri 09:00, unanswered on Friday noon: not due yet.
    """
    timeline = [  # (when, ticket, agent answering, or None for the customer's new mail, text)
        (warsaw(2026, 11, 30, 10, 0), 1, None, "a@firma1.pl"),
        (warsaw(2026, 11, 30, 10, 30), 2, None, "b@firma2.com"),
        (warsaw(2026, 11, 30, 11, 0), 3, None, "c@firma3.pl"),
        (warsaw(2026, 11, 30, 12, 0), 1, ANNA, "Faktura w załączniku."),
        # A colleague's later answer does not change who answered #1 first.
        (warsaw(2026, 11, 30, 15, 0), 1, TOMASZ, "Uzupełniam."),
        (warsaw(2026, 12, 1, 9, 0), 4, None, "d@firma4.pl"),
        (warsaw(2026, 12, 1, 13, 0), 4, ANNA, "Proszę bardzo."),
        (warsaw(2026, 12, 3, 10, 30), 2, TOMASZ, "Here it is."),
        (warsaw(2026, 12, 4, 9, 0), 5, None, "e@firma5.pl"),
    ]
    for moment, ticket_id, agent, text in timeline:
        if agent:
            agent_says(bot, text, moment, agent, ticket_id=ticket_id)
        elif ticket_id == 2:
            bot.deliver(make_mail(sender=text, subject="Invoice", body=ENGLISH), now=moment)
        else:
            bot.deliver(make_mail(sender=text, subject="Faktura"), now=moment)
    return bot


def test_totals_languages_and_agents(history: Mailbot) -> None:
    doc = report.build(history.ctx, REPORT_TIME)
    assert doc["total"] == {
        "received": 5,
        "answered": 3,
        "within_sla": 2,
        "breached": 2,
        "median_hours": 4.0,
        "p90_hours": 24.8,  # between 4 h and 30 h, 80 % of the way
    }
    assert doc["languages"] == {
        "en": {
            "received": 1,
            "answered": 1,
            "within_sla": 0,
            "breached": 1,
            "median_hours": 30.0,
            "p90_hours": 30.0,
        },
        "pl": {
            "received": 4,
            "answered": 2,
            "within_sla": 2,
            "breached": 1,
            "median_hours": 3.0,
            "p90_hours": 3.8,
        },
    }
    agents = doc["agents"]
    assert set(agents) == {ANNA, TOMASZ, report.UNANSWERED}
    assert agents[ANNA]["answered"] == 2 and agents[ANNA]["median_hours"] == 3.0
    assert agents[TOMASZ]["breached"] == 1 and agents[TOMASZ]["median_hours"] == 30.0
    assert agents[report.UNANSWERED] == {
        "received": 2,
        "answered": 0,
        "within_sla": 0,
        "breached": 1,
        "median_hours": None,
        "p90_hours": None,
    }


def test_since_counts_tickets_received_from_that_day(history: Mailbot) -> None:
    doc = report.build(history.ctx, REPORT_TIME, since=date(2026, 12, 1))
    assert doc["since"] == "2026-12-01"
    assert doc["total"]["received"] == 2  # #4 and #5
    assert doc["total"]["median_hours"] == 4.0


def test_paused_time_is_not_counted_against_the_agent(bot: Mailbot) -> None:
    bot.deliver(make_mail(subject="Faktura"), now=warsaw(2026, 11, 30, 10, 0))
    agent_says(bot, "#czeka", warsaw(2026, 11, 30, 11, 0), ANNA)  # pending, nothing sent
    bot.deliver(
        make_mail(subject="Re: [4Dustry #1] Faktura", body="Numer zamówienia: 4711."),
        now=warsaw(2026, 12, 1, 11, 0),
    )  # the customer answers a day later: 10 paused business hours
    agent_says(bot, "Dziękuję, faktura w załączniku.", warsaw(2026, 12, 1, 12, 0), ANNA)
    doc = report.build(bot.ctx, REPORT_TIME)
    assert doc["total"]["median_hours"] == 2.0  # Mon 10–11 and Tue 11–12
    assert doc["total"]["within_sla"] == 1


def test_plain_output_is_a_readable_table(history: Mailbot) -> None:
    text = report.render(report.build(history.ctx, REPORT_TIME))
    lines = text.splitlines()
    assert lines[0].startswith("SLA report, all time")
    header = lines[2].split()
    assert header == [
        "RECEIVED",
        "ANSWERED",
        "WITHIN",
        "SLA",
        "BREACHED",
        "MEDIAN",
        "H",
        "P90",
        "H",
    ]
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines[3:])}
    assert rows["all tickets"] == ["5", "3", "2", "2", "4.0", "24.8"]
    assert rows["language en"] == ["1", "1", "0", "1", "30.0", "30.0"]
    assert rows[f"agent {report.UNANSWERED}"] == ["2", "0", "0", "1", "-", "-"]
    assert len({len(line) for line in lines[2:5]}) == 1  # columns line up


def test_report_command_prints_json_and_a_table(history: Mailbot, tmp_path: Path, capsys) -> None:
    config = str(tmp_path / "config.toml")
    assert main(["--config", config, "report", "--since", "2026-11-30", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"]["received"] == 5 and doc["total"]["within_sla"] == 2
    assert set(doc["languages"]) == {"pl", "en"}
    assert main(["--config", config, "report"]) == 0
    out = capsys.readouterr().out
    assert f"agent {ANNA}" in out and "WITHIN SLA" in out


def test_empty_report(bot: Mailbot) -> None:
    doc = report.build(bot.ctx, REPORT_TIME - timedelta(days=1))
    assert doc["total"]["received"] == 0 and doc["total"]["median_hours"] is None
    assert "all tickets" in report.render(doc)
