"""Personal data: a customer's export and erasure, retention purges, private file modes."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailbot import cli, privacy, report
from tests.helpers import WARSAW_NOON, Mailbot, make_mail
from tests.test_agents import TOMASZ, gmail_reply, notification, outlook_reply

JAN = "jan.kowalski@przyklad.pl"  # a customer of the manager in the shipped config
NAME = "Jan Kowalski"
PHRASE = "zielony-parowoz-7781"  # in Jan's text, his HTML and his attachment, nowhere else
NEEDLES = (JAN, NAME, PHRASE)
EWA = "ewa.nowak@gmail.com"


def outlook_with_attachment(now=WARSAW_NOON) -> bytes:
    """Jan's urgent request as Outlook (Microsoft 365) writes it: text, HTML and a PDF."""
    msg = EmailMessage()
    msg["From"] = f"{NAME} <{JAN}>"
    msg["To"] = '"pomoc@4dustry.com" <pomoc@4dustry.com>'
    msg["Subject"] = "PILNE: awaria linii produkcyjnej"
    msg["Thread-Topic"] = "PILNE: awaria linii produkcyjnej"
    msg["Thread-Index"] = "AdtKK1w9bXJ0c3RhbmRhcmQ="
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = "<DB9P190MB16581A2B3C4D5E6F@DB9P190MB1658.EURP190.PROD.OUTLOOK.COM>"
    msg["Accept-Language"] = "pl-PL, en-US"
    msg["Content-Language"] = "pl-PL"
    msg["X-MS-Has-Attach"] = "yes"
    text = (
        f"Dzień dobry,\n\nlinia stoi od rana, kod błędu {PHRASE}. W załączniku protokół.\n\n"
        f"Z poważaniem\n{NAME}\nKierownik utrzymania ruchu\ntel. +48 601 234 567\n"
    )
    msg.set_content(text)
    msg.add_alternative(f"<html><body><p>Linia stoi, kod {PHRASE}.</p></body></html>", "html")
    msg.add_attachment(
        b"%PDF-1.4\n% protokol " + PHRASE.encode() + b"\n%%EOF\n",
        maintype="application",
        subtype="pdf",
        filename="protokol.pdf",
    )
    return msg.as_bytes()


def gmail_with_cc(now=WARSAW_NOON) -> bytes:
    """Ewa writes from Gmail about her own delivery, with Jan in copy."""
    return make_mail(
        sender=f"Ewa Nowak <{EWA}>",
        subject="Pytanie o dostawę",
        body="Dzień dobry, kiedy dotrze dostawa 5512? W kopii Jan Kowalski, który ją planuje.\nEwa",
        message_id="<CAH7xQk2bR1Ewa9sP0dGm=pQx+3tZ@mail.gmail.com>",
        headers={"Cc": f"{NAME} <{JAN}>"},
        date=now,
    )


def too_many_parts() -> bytes:
    """Jan's Thunderbird mail with more MIME parts than [limits] max_parts: quarantined."""
    msg = EmailMessage()
    msg["From"] = f"{NAME} <{JAN}>"
    msg["To"] = "pomoc@4dustry.com"
    msg["Subject"] = "Zdjęcia z hali"
    msg["Date"] = format_datetime(WARSAW_NOON)
    msg["Message-ID"] = "<5b1c2e4f-8a9d-4e3b-9c7a-2f6d1e0b3a44@przyklad.pl>"
    msg["User-Agent"] = "Mozilla Thunderbird"
    msg.set_content(f"Zdjęcia w załącznikach ({PHRASE}).")
    for n in range(501):
        msg.add_attachment(b"x", maintype="image", subtype="png", filename=f"{n}.png")
    return msg.as_bytes()


def seeded(bot: Mailbot) -> None:
    """Jan's own urgent ticket (answered by an agent, manager paged), his quarantined mail,
    and Ewa's ticket with Jan in copy."""
    bot.deliver(outlook_with_attachment())
    note = notification(bot, to="tomasz@4dustry.com")
    bot.deliver(outlook_reply(note, TOMASZ, "Dzień dobry Panie Janie, technik jest w drodze."))
    bot.deliver(too_many_parts())
    assert bot.ctx.store.count("inbound", status="quarantined") == 1
    later = WARSAW_NOON + timedelta(minutes=5)
    bot.deliver(gmail_with_cc(later), now=later)
    bot.deliver(gmail_reply(notification(bot, to="anna@4dustry.com"), "Anna Kowalska "
                            "<anna@4dustry.com>", "Dostawa dotrze w piątek."), now=later)


def holding_rows(bot: Mailbot, needles=NEEDLES) -> dict[str, list[dict]]:
    """Per table, the rows with a needle in any text or BLOB column (any case)."""
    found: dict[str, list[dict]] = {}
    for table, columns in bot.ctx.store.schema_tables().items():
        for row in bot.ctx.store.rows(table, order=columns[0][0]):
            values = dict(row)
            for value in values.values():
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                if isinstance(text, str) and any(n.lower() in text.lower() for n in needles):
                    found.setdefault(table, []).append(values)
                    break
    return found


def data_files(bot: Mailbot) -> dict[Path, bytes]:
    """Every file under the data dir (database, WAL, attachments, sent mail) and its bytes."""
    return {p: p.read_bytes() for p in bot.cfg.mailbot.data_dir.rglob("*") if p.is_file()}


def run_cli(bot: Mailbot, *args: str) -> int:
    bot.ctx.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    return cli.main(["--config", str(bot.cfg.path), *args])


# -- access -------------------------------------------------------------------------------------


def test_export_holds_every_row_of_every_table_naming_the_customer(bot, tmp_path, capsys):
    seeded(bot)
    holding = holding_rows(bot)
    # The pipeline put Jan in these at least; a new table naming customers joins the list.
    assert {"inbound", "tickets", "messages", "participants", "outbox", "escalations"} <= set(
        holding
    )
    out = tmp_path / "jan.zip"
    assert run_cli(bot, "customer", "export", JAN.upper(), "--out", str(out)) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with zipfile.ZipFile(out) as archive:
        document = json.loads(archive.read("customer.json"))
        files = {name: archive.read(name) for name in archive.namelist()}
    exported = document["tables"]
    for table, rows in holding.items():
        assert table in exported, f"table {table} names the customer but is not exported"
        for row in rows:
            plain = {k: v for k, v in row.items() if not isinstance(v, bytes)}
            assert any(plain.items() <= e.items() for e in exported[table]), (table, plain)
    # The raw mail and the file, byte for byte.
    for row in holding["inbound"]:
        assert files[f"mail/inbound-{row['id']}.eml"] == row["raw"]
    [pdf] = [name for name in files if name.startswith("attachments/")]
    assert PHRASE.encode() in files[pdf] and pdf.endswith("protokol.pdf")
    # Ewa's ticket is in (Jan is in copy) but marked shared; of her and Anna's messages
    # there, only the one that names him.
    assert document["tickets_shared_with_others"] == [2]
    others = [m for m in exported["messages"] if m["ticket_id"] == 2]
    assert [m["from_addr"] for m in others] == [EWA] and NAME in others[0]["text"]


# -- erasure ------------------------------------------------------------------------------------


def test_forget_leaves_no_trace_in_the_database_files_or_the_data_dir(bot, capsys):
    seeded(bot)
    before = report.build(bot.ctx, WARSAW_NOON + timedelta(days=1))
    assert any(PHRASE.encode() in data for data in data_files(bot).values())
    assert run_cli(bot, "customer", "forget", JAN) == 0
    assert "erased; now forgotten-" in capsys.readouterr().out

    files = data_files(bot)
    names = {p.name for p in files}
    assert "mailbot.sqlite3" in names
    for path, data in files.items():
        for needle in NEEDLES:
            assert needle.lower().encode() not in data.lower(), f"{needle} in {path}"
    assert holding_rows(bot) == {}

    # The SLA report and the counts are as they were.
    assert report.build(bot.ctx, WARSAW_NOON + timedelta(days=1)) == before
    store = bot.ctx.store
    assert store.count("tickets") == 2 and store.count("escalations") == 1
    [jans, ewas] = bot.tickets()
    assert privacy.is_pseudonym(jans["requester"]) and jans["erased_at"]
    assert jans["first_response_at"] and jans["language"] == "pl"
    # Ewa's ticket keeps her data; Jan's place in it is the pseudonym.
    assert ewas["requester"] == EWA and ewas["subject"] == "Pytanie o dostawę"
    assert {p["address"] for p in store.rows("participants", order="address", ticket_id=2)} == {
        EWA,
        jans["requester"],
    }
    [ewa_text] = [m["text"] for m in store.rows("messages", ticket_id=2, from_addr=EWA)]
    assert ewa_text.startswith(
        "Dzień dobry, kiedy dotrze dostawa 5512? W kopii [erased], który ją planuje."
    )
    # The audit trail says who, when and how much, nothing personal.
    [audit] = store.rows("events", kind="forgotten")
    assert audit["actor"].startswith("admin") and jans["requester"] in audit["detail"]
    assert "messages" in audit["detail"] and audit["ticket_id"] is None


def test_forget_twice_finds_nothing_more_and_keeps_the_pseudonym(bot, capsys):
    seeded(bot)
    first = privacy.forget(bot.ctx, JAN, WARSAW_NOON)
    again = privacy.find(bot.ctx, JAN)
    assert again.pseudonym == first.pseudonym
    assert again.tickets == {} and again.messages == [] and again.inbound == []
    assert again.escalations == [] and again.outbox == []


def test_forget_dry_run_lists_what_would_go_and_changes_nothing(bot, capsys):
    seeded(bot)
    holding = holding_rows(bot)
    assert run_cli(bot, "customer", "forget", JAN, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"{JAN}: would be erased" in out
    assert "  tickets: 1\n  shared_tickets: 1\n" in out and "  attachments: 1\n" in out
    assert holding_rows(bot) == holding
    assert not bot.ctx.store.rows("events", kind="forgotten")


@pytest.mark.parametrize(
    "address",
    ["pomoc@4dustry.com", "POMOC+faktury@4dustry.com", "anna@4dustry.com",
     "marta.wisniewska@4dustry.com", "kierownik@4dustry.com"],
)  # fmt: skip
def test_customer_commands_refuse_the_company_addresses(bot, capsys, address):
    seeded(bot)
    holding = holding_rows(bot, needles=(address.lower(),))
    for action in (["forget", address], ["forget", address, "--dry-run"], ["export", address]):
        assert run_cli(bot, "customer", *action) == 1
        assert "refused" in capsys.readouterr().err
    assert holding_rows(bot, needles=(address.lower(),)) == holding


# -- retention ----------------------------------------------------------------------------------


def retention_bot(tmp_path: Path, **keep: str) -> Mailbot:
    settings = {f"retention.{k}": f'"{v}"' for k, v in keep.items()}
    return Mailbot(tmp_path, settings=settings)


def test_raw_mail_goes_one_second_after_its_retention_not_at_it(tmp_path):
    bot = retention_bot(tmp_path, raw_mail="365 days")
    try:
        inbound_id = bot.deliver(outlook_with_attachment())
        limit = WARSAW_NOON + timedelta(days=365)
        assert privacy.purge(bot.ctx, limit).counts()["raw_mail"] == 0
        assert bot.inbound(inbound_id)["raw"]
        gone = privacy.purge(bot.ctx, limit + timedelta(seconds=1))
        assert gone.raw_mail == [inbound_id]
        row = bot.inbound(inbound_id)
        assert row["raw"] == b"" and row["size"] > 0 and row["status"] == "processed"
        assert cli.main(["--config", str(bot.cfg.path), "raw", str(inbound_id)]) == 1
        # The text read from it stays on the ticket.
        [message] = bot.ctx.store.rows("messages", inbound_id=inbound_id)
        assert PHRASE in message["text"]
    finally:
        bot.close()


def test_attachments_go_after_their_retention_and_files_leave_the_disk(tmp_path):
    bot = retention_bot(tmp_path, attachments="180 days")
    try:
        bot.deliver(outlook_with_attachment())
        [att] = bot.ctx.store.rows("attachments")
        path = bot.cfg.mailbot.data_dir / att["path"]
        assert path.is_file()
        limit = WARSAW_NOON + timedelta(days=180)
        assert privacy.due_for_purge(bot.ctx, limit).attachments == []
        assert privacy.purge(bot.ctx, limit + timedelta(seconds=1), dry_run=True).attachments == [
            att["id"]
        ]
        assert path.is_file()  # a dry run removes nothing
        privacy.purge(bot.ctx, limit + timedelta(seconds=1))
        assert not path.exists()
        [after] = bot.ctx.store.rows("attachments")
        assert after["purged_at"] and after["filename"] == "[erased]"
        assert after["size"] == att["size"]
    finally:
        bot.close()


def test_closed_tickets_lose_personal_data_after_retention_and_the_report_stays(tmp_path):
    bot = retention_bot(tmp_path, closed_tickets="3 years")
    try:
        bot.deliver(outlook_with_attachment())
        note = notification(bot, to="tomasz@4dustry.com")
        bot.deliver(outlook_reply(note, TOMASZ, "#zamknij\nDzień dobry, naprawione."))
        [ticket] = bot.tickets()
        assert ticket["status"] == "closed"
        closed = ticket["closed_at"]
        at_limit = datetime.fromisoformat(closed) + timedelta(days=365 * 3 + 2)
        before = report.build(bot.ctx, at_limit)
        assert privacy.purge(bot.ctx, at_limit - timedelta(days=1)).closed_tickets == []
        assert privacy.purge(bot.ctx, at_limit).closed_tickets == [ticket["id"]]
        assert holding_rows(bot) == {}
        assert report.build(bot.ctx, at_limit) == before
        assert report.build(bot.ctx, at_limit)["agents"]["tomasz@4dustry.com"]["answered"] == 1
        [after] = bot.tickets()
        assert privacy.is_pseudonym(after["requester"]) and after["erased_at"]
        assert bot.ctx.store.rows("events", kind="retention")
    finally:
        bot.close()


def test_closed_ticket_retention_boundary_is_exact(tmp_path):
    bot = retention_bot(tmp_path, closed_tickets="3 years")
    try:
        bot.deliver(make_mail(sender=f"{NAME} <{JAN}>"))
        note = notification(bot, to="anna@4dustry.com")
        bot.deliver(outlook_reply(note, "Anna Kowalska <anna@4dustry.com>", "#zamknij\nGotowe."))
        [ticket] = bot.tickets()
        closed = datetime.fromisoformat(ticket["closed_at"])
        exactly = closed.replace(year=closed.year + 3)
        assert privacy.due_for_purge(bot.ctx, exactly).closed_tickets == []
        assert privacy.due_for_purge(bot.ctx, exactly + timedelta(seconds=1)).closed_tickets == [
            ticket["id"]
        ]
    finally:
        bot.close()


def test_purge_command_reports_counts_and_off_by_default(bot, tmp_path, capsys):
    seeded(bot)
    assert run_cli(bot, "purge", "--dry-run") == 0
    assert "keeps everything" in capsys.readouterr().out
    (tmp_path / "other").mkdir()
    other = retention_bot(tmp_path / "other", raw_mail="1 day")
    try:
        other.deliver(outlook_with_attachment(), now=WARSAW_NOON - timedelta(days=3))
        assert run_cli(other, "purge", "--dry-run") == 0
        assert "would remove:\n  raw_mail: 1\n" in capsys.readouterr().out
        assert run_cli(other, "purge") == 0
        assert "removed:\n  raw_mail: 1\n" in capsys.readouterr().out
    finally:
        other.close()


@pytest.mark.parametrize(
    "value, problem",
    [('"forever"', "expected a period"), ('"0 days"', "at least 1"), ("365", "expected a string")],
)
def test_check_config_rejects_bad_retention(tmp_path, capsys, value, problem):
    from tests.helpers import write_config

    path = write_config(tmp_path, settings={"retention.raw_mail": value})
    assert cli.main(["--config", str(path), "check-config"]) == 1
    line = capsys.readouterr().out
    assert "config.toml: [retention] raw_mail:" in line and problem in line


# -- file modes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_files_under_the_data_dir_are_private_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        bot = Mailbot(tmp_path)
        try:
            bot.deliver(outlook_with_attachment())
            bot.deliver(outlook_reply(notification(bot, to="tomasz@4dustry.com"), TOMASZ, "Ok."))
            paths = [bot.cfg.mailbot.data_dir, *bot.cfg.mailbot.data_dir.rglob("*")]
            modes = {p: (p.is_dir(), stat.S_IMODE(p.stat().st_mode)) for p in paths}
        finally:
            bot.close()
    finally:
        os.umask(old)
    kinds = {p.name for p in paths}
    assert {"mailbot.sqlite3", "mailbot.sqlite3-wal", "secret.key", "attachments", "new"} <= kinds
    assert any(p.name.endswith(".mailbot") for p in paths)
    for path, (is_dir, mode) in modes.items():
        assert mode == (0o700 if is_dir else 0o600), (path, oct(mode))


def test_a_database_file_copied_in_with_a_loose_mode_is_made_private(tmp_path):
    database = tmp_path / "data" / "mailbot.sqlite3"
    database.parent.mkdir()
    database.touch(mode=0o644)
    database.chmod(0o644)
    bot = Mailbot(tmp_path)
    try:
        bot.deliver(make_mail())
        assert stat.S_IMODE(database.stat().st_mode) == 0o600
        wal = database.with_name("mailbot.sqlite3-wal")
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        bot.close()



def test_the_daemon_purges_daily_what_is_past_retention(tmp_path):
    from mailbot.scheduler import TimerScheduler

    bot = retention_bot(tmp_path, raw_mail="1 day")
    inbound_id = bot.deliver(outlook_with_attachment(), now=WARSAW_NOON - timedelta(days=3))
    timers = TimerScheduler(bot.cfg, lambda: None)
    timers.start()
    try:
        job = timers.scheduler.get_job("retention")
        assert job is not None and job.trigger.interval == timedelta(hours=24)
        timers.purge()  # what the job runs, now rather than a minute after start
    finally:
        timers.shutdown()
    try:
        assert bot.inbound(inbound_id)["raw"] == b""
        assert bot.ctx.store.rows("events", kind="retention")
    finally:
        bot.close()


def test_verify_after_retention_counts_removed_mail_and_files_as_removed_not_damaged(
    tmp_path, capsys
):
    bot = retention_bot(tmp_path, raw_mail="365 days", attachments="180 days")
    try:
        bot.deliver(outlook_with_attachment())
        privacy.purge(bot.ctx, WARSAW_NOON + timedelta(days=366))
        assert cli.main(["--config", str(bot.cfg.path), "verify"]) == 0
        out = capsys.readouterr().out
        assert "0 messages checked against their SHA-256 (1 removed as personal data" in out
        assert "attachments: 0 files checked" in out
    finally:
        bot.close()


def test_customer_commands_refuse_every_support_address(tmp_path, capsys):
    extra = '[[mailboxes]]\naddress = "support@4dustry.com"\ndefault_language = "en"\n'
    bot = Mailbot(tmp_path, extra=extra)
    try:
        for address in ("support@4dustry.com", "Support+orders@4dustry.com"):
            assert run_cli(bot, "customer", "forget", address, "--dry-run") == 1
            assert "refused" in capsys.readouterr().err
    finally:
        bot.close()


def test_mail_queued_before_its_file_was_removed_goes_out_without_it(tmp_path):
    """A notification still queued (relay down, say) when retention removes the customer's
    file goes out without the file instead of failing over and over."""
    from mailbot.worker import process_pending

    bot = retention_bot(tmp_path, attachments="180 days")
    try:
        bot.feed(outlook_with_attachment())
        process_pending(bot.ctx, WARSAW_NOON)  # queued, not delivered yet
        queued = [r for r in bot.ctx.store.rows("outbox") if r["attachments"] != "[]"]
        assert queued and all(r["status"] == "pending" for r in queued)
        later = WARSAW_NOON + timedelta(days=181)
        privacy.purge(bot.ctx, later)
        bot.run(later)
        assert all(bot.ctx.store.rows("outbox", id=r["id"])[0]["status"] == "sent" for r in queued)
        raws = [p.read_bytes() for p in (bot.cfg.outbound.path / "new").iterdir()]
        assert raws and not any(b"application/pdf" in raw for raw in raws)
    finally:
        bot.close()


def test_forget_says_when_the_running_daemon_kept_the_log_from_being_emptied(bot, capsys):
    import sqlite3

    from mailbot.context import database_path

    seeded(bot)
    bot.ctx.store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    # A connection holding a read, as the running daemon's may: the log cannot be emptied.
    reader = sqlite3.connect(database_path(bot.cfg), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM tickets").fetchone()
    try:
        assert cli.main(["--config", str(bot.cfg.path), "customer", "forget", JAN]) == 0
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert "Run the same command again when the daemon is idle" in capsys.readouterr().err
    assert run_cli(bot, "customer", "forget", JAN) == 0  # idle now: nothing more, log emptied
    assert "write-ahead log" not in capsys.readouterr().err
