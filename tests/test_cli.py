"""The mailbot command line: JSON documents, import formats, quarantine and retry, docs."""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path

import pytest

from mailbot.cli import build_parser, main
from tests.helpers import ROOT, make_mail, write_config

TICKET_KEYS = {
    "id",
    "subject",
    "status",
    "priority",
    "language",
    "requester",
    "created_at",
    "first_response_due",
    "first_response_at",
    "assignee",
    "topic",
}
MESSAGE_KEYS = {"direction", "kind", "from", "message_id", "text", "created_at"}
OUTBOX_KEYS = {"id", "ticket", "template", "to", "subject", "message_id", "status", "attempts"}


@pytest.fixture
def cli(tmp_path: Path, capsys):
    config = write_config(tmp_path)

    def run(*args: str) -> tuple[int, str]:
        code = main(["--config", str(config), *args])
        return code, capsys.readouterr().out

    return run


def _json(run, *args: str):
    code, out = run(*args, "--json")
    assert code == 0
    return json.loads(out)


def test_import_eml_mbox_and_maildir_then_list_show_and_outbox(cli, tmp_path: Path) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_mail(sender="a@firma-a.pl", subject="Pierwsze"))
    box = mailbox.mbox(tmp_path / "archive.mbox")
    box.add(make_mail(sender="b@firma-b.pl", subject="Drugie"))
    box.flush()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(make_mail(sender="c@firma-c.pl", subject="Trzecie"))
    code, out = cli("import", str(eml), str(tmp_path / "archive.mbox"), str(tmp_path / "Maildir"))
    assert code == 0 and "imported 3 new" in out

    tickets = _json(cli, "tickets")
    assert [t["subject"] for t in tickets] == ["Pierwsze", "Drugie", "Trzecie"]
    assert all(TICKET_KEYS.issubset(t) for t in tickets)
    assert re.match(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", tickets[0]["first_response_due"]
    )
    assert tickets[0]["first_response_at"] is None and tickets[0]["assignee"] is None

    shown = _json(cli, "show", str(tickets[0]["id"]))
    assert TICKET_KEYS.issubset(shown) and {"messages", "events"}.issubset(shown)
    assert all(MESSAGE_KEYS.issubset(m) for m in shown["messages"])
    assert shown["messages"][0]["direction"] == "in" and shown["messages"][0]["kind"] == "customer"
    assert any(e["kind"] == "created" for e in shown["events"])

    rows = _json(cli, "outbox")
    assert rows and all(OUTBOX_KEYS.issubset(r) for r in rows)
    assert {r["status"] for r in rows} == {"pending"}
    code, out = cli("run", "--once")
    assert code == 0 and f"{len(rows)} sent" in out
    assert {r["status"] for r in _json(cli, "outbox")} == {"sent"}

    code, out = cli("tickets", "--status", "open")
    assert code == 0 and "Pierwsze" in out and out.splitlines()[0].startswith("ID")
    code, out = cli("show", str(tickets[0]["id"]))
    assert code == 0 and "Pierwsze" in out


def test_import_twice_is_one_ticket(cli, tmp_path: Path) -> None:
    eml = tmp_path / "one.eml"
    eml.write_bytes(make_mail())
    cli("import", str(eml))
    code, out = cli("import", str(eml))
    assert code == 0 and "0 new, 1 already known" in out
    assert len(_json(cli, "tickets")) == 1


def test_quarantine_lists_and_retry_reruns(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"Subject: who wrote this?\r\n\r\nno sender")
    cli("import", str(bad))
    [row] = _json(cli, "quarantine")
    assert row["status"] == "quarantined" and "no sender" in row["reason"]
    code, out = cli("retry", str(row["id"]))
    assert code == 1 and "quarantined" in out  # still broken: stays in quarantine
    code, _ = cli("retry", "999")
    assert code == 1


def test_show_unknown_ticket_fails(cli) -> None:
    assert cli("show", "42")[0] == 1


def test_import_of_missing_path_fails_clearly(cli, capsys) -> None:
    code, _ = cli("import", "/nonexistent/mail.eml")
    assert code == 2


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"`mailbot {name}" in readme, f"README does not document `mailbot {name}`"
