"""What an admin meets: one-line errors naming the setting, check-config's checks, CLI manners."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import load
from tests.daemon_helpers import InProcessDaemon, daemon_settings
from tests.helpers import ROOT, Mailbot, make_mail, write_config
from tests.servers import free_port

OUTLOOK_ID = "<AM0PR07MB6148E2B5C0D1A4F2B7C1A9E3D2F40@AM0PR07MB6148.eurprd07.prod.outlook.com>"


def _mailbot(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `mailbot` command in a child process, as an admin runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mailbot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- mailbot run: one line naming the setting ------------------------------------------------


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        yield holder.getsockname()[1]


RUN_FAILURES = {
    "port 99999": (
        {"inbound.smtp.listen": '"127.0.0.1:99999"'},
        "config.toml: [inbound.smtp] listen: port 99999 is not a valid port (1–65535)",
    ),
    "unresolvable host": (
        {"inbound.smtp.listen": '"mailbot.invalid:2525"'},
        "config.toml: [inbound.smtp] listen: cannot resolve host 'mailbot.invalid'",
    ),
    "address of another machine": (
        {"inbound.smtp.listen": '"192.0.2.10:2525"'},  # TEST-NET-1: never ours
        "config.toml: [inbound.smtp] listen: 192.0.2.10 is not an address of this machine",
    ),
    "data_dir below a file": (
        {"mailbot.data_dir": '"config.toml/data"'},
        "config.toml: [mailbot] data_dir: ",
    ),
}


@pytest.mark.parametrize("case", RUN_FAILURES, ids=list(RUN_FAILURES))
def test_run_and_check_config_name_the_setting_in_one_line(tmp_path: Path, case: str) -> None:
    settings, expected = RUN_FAILURES[case]
    config = write_config(tmp_path, settings=settings)
    for command in ("check-config", "run"):
        result = _mailbot("--config", str(config), command, cwd=tmp_path)
        output = (result.stdout if command == "check-config" else result.stderr).strip()
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert output.splitlines()[0].startswith(expected), (command, output)
        assert len(output.splitlines()) == 1, output
    if case == "data_dir below a file":
        assert f"{tmp_path / 'config.toml'} is not a directory" in output


def test_run_on_a_taken_port_says_so_in_one_line(tmp_path: Path, taken_port: int) -> None:
    config = write_config(tmp_path, settings={"inbound.smtp.listen": f'"127.0.0.1:{taken_port}"'})
    # check-config does not bind the configured port: a running daemon holds it legitimately.
    assert _mailbot("--config", str(config), "check-config", cwd=tmp_path).returncode == 0
    result = _mailbot("--config", str(config), "run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"config.toml: [inbound.smtp] listen: 127.0.0.1:{taken_port}: address already in use"
        " (is another mailbot or MTA listening?)"
    )


def test_unwritable_data_dir_is_named_by_every_command(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    config = write_config(tmp_path, settings={"mailbot.data_dir": '"not-a-dir/data"'})
    assert main(["--config", str(config), "tickets"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"config.toml: [mailbot] data_dir: {blocker}/data: {blocker} is not a directory"


# -- check-config: mistakes an admin will make ------------------------------------------------

SECOND_ANNA = '\n[[agents]]\nemail = "Anna@4dustry.com"\nname = "Anna K."\n'
SECOND_MANAGER = (
    '\n[[managers]]\nname = "Piotr Zieliński"\nemail = "piotr@4dustry.com"\n'
    'customers = ["jan@klient.pl", "@PRZYKLAD.pl"]\n'
)
SAME_TOPIC = '\n[[topics]]\nname = "Bugs"\nkeywords = ["usterka"]\nagents = []\n'

MISTAKES = {
    "agent listed twice": (
        {},
        SECOND_ANNA,
        "[agents.2] email: anna@4dustry.com is also agents.0",
    ),
    "topic listed twice": ({}, SAME_TOPIC, "[topics.4] names: 'bugs' is also a name of topics.0"),
    "wildcard customer domain": (
        {"customers": '["@*.example.pl"]'},
        "",
        "[managers.0] customers: '@*.example.pl' can never match",
    ),
    "domain under two managers": (
        {},
        SECOND_MANAGER,
        "[managers.1] customers: @przyklad.pl is also a customer of managers.0",
    ),
    "unknown subdivision": (
        {"hours.subdivision": '"Mazowsze"'},
        "",
        "[hours] subdivision: unknown subdivision 'Mazowsze' of PL; use one of 02, 04,",
    ),
    "warning as long as the deadline": (
        {"sla.warn_before": '["2 business days"]'},
        "",
        "[sla] warn_before: 2 business days is not shorter than first_response (2 business days)",
    ),
    "warning longer than the deadline": (
        {"sla.first_response": '"8h"', "sla.warn_before": '["1 business day"]'},
        "",
        "[sla] warn_before: 1 business day is not shorter than first_response (8h)",
    ),
    "abuse_limit below abuse_warn": (
        {"urgent.abuse_warn": "4", "urgent.abuse_limit": "2"},
        "",
        "[urgent] abuse_limit: 2 is below abuse_warn (4)",
    ),
    "processing max_attempts 0": (
        {"mailbot.max_attempts": "0"},
        "",
        "[mailbot] max_attempts: must be at least 1",
    ),
    "delivery max_attempts 0": (
        {"outbound.max_attempts": "0"},
        "",
        "[outbound] max_attempts: must be at least 1",
    ),
}


@pytest.mark.parametrize("case", MISTAKES, ids=list(MISTAKES))
def test_check_config_refuses_mistakes_an_admin_will_make(tmp_path: Path, capsys, case) -> None:
    settings, extra, expected = MISTAKES[case]
    dotted = {k: v for k, v in settings.items() if "." in k}
    plain = {k: v for k, v in settings.items() if "." not in k}  # [[managers]]: first entry
    config = write_config(tmp_path, extra, dotted, **plain)
    assert main(["--config", str(config), "check-config"]) == 1
    captured = capsys.readouterr()
    assert [line for line in captured.out.splitlines() if expected in line], captured.out
    assert all(line.startswith("config.toml: [") for line in captured.out.splitlines())
    assert captured.err.strip().startswith(f"{config}: ")  # which file, by its full path


def test_settings_that_look_alike_but_are_fine_pass(tmp_path: Path, capsys) -> None:
    config = write_config(
        tmp_path,
        settings={
            "hours.subdivision": '"14"',  # Mazowieckie
            "urgent.abuse_limit": "0",  # 0 switches the limit off: not "below" the warning
        },
        customers='["@przyklad.pl", "@dział.przyklad.pl", "jan@klient.pl"]',
    )
    assert main(["--config", str(config), "check-config"]) == 0
    assert capsys.readouterr().out.strip() == f"{config}: OK (2 agents, languages pl, en)"


def test_business_hours_that_add_up_to_days_warn_but_pass(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path, settings={"sla.first_response": '"48 hours"'})
    assert main(["--config", str(config), "check-config"]) == 0
    warning, ok = capsys.readouterr().out.splitlines()
    assert warning.startswith("config.toml: [sla] first_response: warning: 48h is 48 business")
    assert "(08:00–18:00): 4.8 business days" in warning and '"2 business days"' in warning
    assert ok.startswith(f"{config}: OK")


def test_daemon_logs_config_warnings_at_start(tmp_path: Path, caplog) -> None:
    settings = daemon_settings(**{"sla.first_response": '"40h"'})
    running = InProcessDaemon(tmp_path, settings)
    with caplog.at_level(logging.WARNING, logger="mailbot"):
        running.start()
    running.stop()
    [record] = [r for r in caplog.records if r.getMessage() == "config"]
    assert "40 business hours" in record.problem and "4 business days" in record.problem


def test_secret_file_from_systemd_credentials(tmp_path: Path, monkeypatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "imap-password").write_text("hasło-z-systemd\n")
    config = write_config(
        tmp_path,
        settings={
            "inbound.imap.enabled": "true",
            "inbound.imap.password_env": '""',
            "inbound.imap.password_file": '"${CREDENTIALS_DIRECTORY}/imap-password"',
        },
    )
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = load(config)  # a shell has no credentials directory: not checked, not refused
    with pytest.raises(FileNotFoundError, match="CREDENTIALS_DIRECTORY is not set"):
        cfg.imap.password.read()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert load(config).imap.password.read() == "hasło-z-systemd"
    assert "hasło" not in repr(load(config))


# -- the CLI's manners --------------------------------------------------------------------------


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "one.eml").write_bytes(make_mail())
    assert main(["--config", str(config), "import", str(tmp_path / "one.eml")]) == 0
    for args in (("tickets",), ("outbox", "--json")):
        read, write = os.pipe()
        os.close(read)  # `| head -1` that has already gone: every write meets a closed pipe
        with os.fdopen(write, "wb") as stdout:
            result = subprocess.run(
                [sys.executable, "-m", "mailbot", "--config", str(config), *args],
                stdout=stdout,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                timeout=60,
            )
        assert result.stderr == b"", result.stderr.decode()
        assert result.returncode == 141


def test_id_beyond_sqlite_range_is_a_usage_error(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path)
    for command in ("show", "retry", "raw", "attachment"):
        with pytest.raises(SystemExit) as exit_info:
            main(["--config", str(config), command, "99999999999999999999"])
        assert exit_info.value.code == 2
        assert "99999999999999999999 is out of range (1 to 9223372036854775807)" in (
            capsys.readouterr().err
        )
    assert main(["--config", str(config), "show", "9223372036854775807"]) == 1  # no such ticket


def test_interrupted_import_says_how_to_continue(tmp_path: Path, monkeypatch, capsys) -> None:
    from mailbot.sources import files

    config = write_config(tmp_path)
    for i in range(5):
        (tmp_path / f"{i}.eml").write_bytes(make_mail(subject=f"Zamówienie {i}"))
    paths = [str(tmp_path / f"{i}.eml") for i in range(5)]
    real_accept = files.accept
    stored: list[int] = []

    def accept_then_ctrl_c(*args, **kwargs):
        if len(stored) == 3:
            raise KeyboardInterrupt
        stored.append(1)
        return real_accept(*args, **kwargs)

    monkeypatch.setattr(files, "accept", accept_then_ctrl_c)
    assert main(["--config", str(config), "import", *paths]) == 130
    assert capsys.readouterr().err == "mailbot import: interrupted; run again to continue\n"
    monkeypatch.setattr(files, "accept", real_accept)
    assert main(["--config", str(config), "import", *paths]) == 0
    assert "imported 2 new, 3 already known; processed 5" in capsys.readouterr().out


def test_version_and_config_after_the_command(tmp_path: Path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"mailbot {version('mailbot')}\n"
    config = write_config(tmp_path)
    monkeypatch.chdir(ROOT.parent)  # no config.toml here: only --config can find it
    monkeypatch.delenv("MAILBOT_CONFIG", raising=False)
    assert main(["check-config", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith(f"{config}: OK")
    assert main(["tickets", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.fixture
def desk(tmp_path: Path):
    """Tickets a week old (overdue), from today, and a closed overdue one."""
    bot = Mailbot(tmp_path)
    now = datetime.now(UTC)
    week_ago = now - timedelta(days=7)
    bot.deliver(make_mail(sender="a@firma-a.pl", subject="Opóźniona dostawa"), now=week_ago)
    bot.deliver(make_mail(sender="b@firma-b.pl", subject="Faktura"), now=week_ago)
    bot.deliver(make_mail(sender="c@firma-c.pl", subject="Dostawa nie dotarła"), now=now)
    bot.deliver(make_mail(sender="d@firma-d.pl", subject="Przesyłka zniknęła"), now=week_ago)
    with bot.ctx.store.atomic():
        bot.ctx.store.tickets.update(1, {"assignee": "anna@4dustry.com"})
        bot.ctx.store.tickets.update(3, {"assignee": "anna@4dustry.com"})
        bot.ctx.store.tickets.update(4, {"status": "closed"})
    yield bot
    bot.close()


def _ids(capsys, config: Path, *args: str) -> list[int]:
    assert main(["--config", str(config), "tickets", "--json", *args]) == 0
    return [t["id"] for t in json.loads(capsys.readouterr().out)]


def test_tickets_filters(desk: Mailbot, capsys) -> None:
    config = desk.cfg.path
    assert _ids(capsys, config, "--overdue") == [1, 2]
    assert _ids(capsys, config, "--assignee", "Anna") == [1, 3]
    assert _ids(capsys, config, "--assignee", "anna@4dustry.com", "--overdue") == [1]
    assert _ids(capsys, config, "--topic", "Logistyka") == [1, 3, 4]  # the Polish name
    assert _ids(capsys, config, "--topic", "logistics", "--status", "open", "--limit", "1") == [1]
    assert main(["--config", str(config), "tickets", "--assignee", "Zenon"]) == 2
    assert "no agent 'Zenon' (agents: Anna Kowalska, Tomasz Nowak)" in capsys.readouterr().err
    assert main(["--config", str(config), "tickets", "--topic", "faktury"]) == 2
    assert "no topic 'faktury'" in capsys.readouterr().err
    assert main(["--config", str(config), "tickets", "--overdue"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 3 and table[1].split()[0] == "1" and table[2].split()[0] == "2"


def test_quarantine_and_inbound_say_where_mail_came_from(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path)
    bad = tmp_path / "bez-nadawcy.eml"
    bad.write_bytes(b"Subject: who wrote this?\r\n\r\nno sender")
    main(["--config", str(config), "import", str(bad)])
    capsys.readouterr()
    for command in ("quarantine", "inbound"):
        assert main(["--config", str(config), command, "--json"]) == 0
        [row] = json.loads(capsys.readouterr().out)
        assert row["origin"] == f"import {bad}"
        assert main(["--config", str(config), command]) == 0
        header, line = capsys.readouterr().out.splitlines()
        shown = f"import {bad}"
        shown = shown if len(shown) <= 60 else "…" + shown[-59:]  # the file's name stays
        assert "ORIGIN" in header.split() and shown in line and "bez-nadawcy.eml" in line


def test_show_tells_queued_and_failed_mail_from_sent(tmp_path: Path, smtp_sink, capsys) -> None:
    bot = Mailbot(tmp_path, settings=daemon_settings(smtp_sink))
    try:
        smtp_sink.fail_with(451, "4.3.0 Try again later")
        bot.deliver(make_mail(sender="jan@klient.pl", message_id=OUTLOOK_ID))
        smtp_sink.fail_with(550, "5.1.1 <ewa@firma.pl>: Recipient address rejected")
        bot.deliver(make_mail(sender="ewa@firma.pl", subject="Druga sprawa"))
    finally:
        bot.close()
    config = str(bot.cfg.path)

    assert main(["--config", config, "show", "1"]) == 0
    text = capsys.readouterr().out
    assert "first response due " in text and ", not yet" in text and "at -" not in text
    [ack] = [line for line in text.splitlines() if "out system" in line]
    assert "[queued (attempt 2, next at 2026-11-30T11:0" in ack
    assert "(ack to jan@klient.pl)" in text and "sent to" not in text

    assert main(["--config", config, "show", "2"]) == 0
    text = capsys.readouterr().out
    [ack] = [line for line in text.splitlines() if "out system" in line]
    assert ack.endswith("[failed: 550 5.1.1 <ewa@firma.pl>: Recipient address rejected]"), ack
    assert "sent to" not in text

    assert main(["--config", config, "show", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [delivery] = [m["delivery"] for m in doc["messages"] if m["kind"] == "system"]
    assert delivery["status"] == "failed" and delivery["sent_at"] is None
    assert all(m["delivery"] is None for m in doc["messages"] if m["direction"] == "in")
