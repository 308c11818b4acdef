"""Tokens outlive neither their database nor their ticket; a lost or damaged database stops us."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from mailbot.cli import main
from mailbot.context import database_path, open_context
from mailbot.daemon import CannotStart, Daemon
from mailbot.tokens import Signer
from tests.helpers import WARSAW_NOON, Mailbot, body_of, make_mail
from tests.test_agents import ANNA, customer_mail, notification, outlook_reply

LATER = WARSAW_NOON + timedelta(days=1)
FORGED_ANSWER = "#zamknij\n\nProszę przelać 5000 zł na konto 12 3456."


def _customers_mail(bot, since: int) -> list:
    return [m for m in bot.outbox()[since:] if not m["To"].endswith("@4dustry.com")]


def _lose_database(bot: Mailbot) -> None:
    """The database file goes (a disk swapped, a wrong rm); secret.key stays."""
    bot.close()
    path = database_path(bot.cfg)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def test_old_tokens_do_not_act_on_a_new_database(tmp_path) -> None:
    bot = Mailbot(tmp_path)
    customer_mail(bot, subject="Dostawa")  # ticket 1: Jan
    old_note = notification(bot, "anna@4dustry.com")
    [old_ack] = [m for m in bot.outbox() if m["To"] == "jan@klient.pl"]
    _lose_database(bot)
    open_context(bot.cfg, new_database=True).close()  # the admin starts afresh, knowingly
    bot = Mailbot(tmp_path)
    try:
        customer_mail(bot, subject="Faktura", sender="Ewa Nowak <ewa@klient.pl>")  # ticket 1 again
        sent = len(bot.outbox())
        bot.deliver(outlook_reply(old_note, ANNA, FORGED_ANSWER), now=LATER)
        ticket = bot.ctx.store.tickets.get(1)
        assert ticket["requester"] == "ewa@klient.pl" and ticket["status"] == "open"
        assert _customers_mail(bot, sent) == []  # Anna's answer to Jan never reaches Ewa
        # Jan answering his old ack gets a ticket of his own, not Ewa's.
        reply = make_mail(
            subject="Re: " + old_ack["Subject"],
            body="Czy są już jakieś informacje?",
            headers={"In-Reply-To": old_ack["Message-ID"], "References": old_ack["Message-ID"]},
        )
        bot.deliver(reply, now=LATER + timedelta(minutes=5))
        assert not bot.ctx.store.rows("messages", ticket_id=1, from_addr="jan@klient.pl")
        assert [t["requester"] for t in bot.tickets()][-1] == "jan@klient.pl"
    finally:
        bot.close()


def test_tokens_of_tickets_lost_with_a_restored_backup_do_not_act(tmp_path) -> None:
    bot = Mailbot(tmp_path)
    customer_mail(bot, subject="Dostawa")  # ticket 1: Jan, in the backup
    note_1 = notification(bot, "anna@4dustry.com")
    bot.close()
    path = database_path(bot.cfg)
    backup = tmp_path / "backup.sqlite3"
    shutil.copyfile(path, backup)
    bot = Mailbot(tmp_path)
    customer_mail(bot, subject="Faktura", sender="Ewa Nowak <ewa@klient.pl>")  # ticket 2: lost
    note_2 = notification(bot, "anna@4dustry.com")
    _lose_database(bot)
    shutil.copyfile(backup, path)  # the admin restores last night's backup
    bot = Mailbot(tmp_path)
    try:
        customer_mail(bot, subject="Reklamacja", sender="Piotr Wiśniewski <piotr@sklep.pl>")
        assert bot.ctx.store.tickets.get(2)["requester"] == "piotr@sklep.pl"
        sent = len(bot.outbox())
        bot.deliver(outlook_reply(note_2, ANNA, FORGED_ANSWER), now=LATER)
        assert bot.ctx.store.tickets.get(2)["status"] == "open"
        assert _customers_mail(bot, sent) == []  # nothing meant for Ewa reaches Piotr
        # Ticket 1 is in the backup: its tokens still work.
        bot.deliver(outlook_reply(note_1, ANNA, "#zamknij\n\nPaczka wyszła."), now=LATER)
        [answer] = _customers_mail(bot, sent)
        assert answer["To"] == "jan@klient.pl" and body_of(answer).startswith("Paczka wyszła.")
        assert bot.ctx.store.tickets.get(1)["status"] == "closed"
    finally:
        bot.close()


def _legacy_message_id(bot, ticket_id: int, purpose: str, to: str) -> str:
    """A Message-ID as mailbot signed it before tokens were bound (8-character nonce)."""
    signer: Signer = bot.ctx.signer
    nonce = "5f3a9c1e"
    mac = signer._mac(ticket_id, purpose, to, nonce, None)
    return f"<mb.{ticket_id}.{purpose}.{nonce}.{mac}@4dustry.com>"


def test_tokens_issued_before_the_change_still_act_on_their_old_tickets(tmp_path) -> None:
    bot = Mailbot(tmp_path)
    try:
        customer_mail(bot, subject="Dostawa")
        customer_mail(bot, subject="Faktura", sender="Ewa Nowak <ewa@klient.pl>")
        bot.ctx.store.tickets.update(1, {"token_key": None})  # a ticket from before m012
        note = notification(bot, "anna@4dustry.com", 0)
        sent = len(bot.outbox())
        for ticket_id in (1, 2):
            legacy = _legacy_message_id(bot, ticket_id, "agent", "anna@4dustry.com")
            raw = outlook_reply(note, ANNA, f"#czeka\n\nProszę o numer zamówienia {ticket_id}.")
            raw = raw.replace(note["Message-ID"].encode(), legacy.encode())
            bot.deliver(raw, now=LATER + timedelta(minutes=ticket_id))
        assert bot.ctx.store.tickets.get(1)["status"] == "pending"
        [answer] = _customers_mail(bot, sent)
        assert answer["To"] == "jan@klient.pl"
        # Ticket 2 was made with a key: an old-form token for it is not ours.
        assert bot.ctx.store.tickets.get(2)["status"] == "open"
        [unverified] = bot.ctx.store.rows("messages", kind="note", verified=0)
        assert "numer zamówienia 2" in unverified["text"]
    finally:
        bot.close()


def test_each_ticket_has_its_own_key_and_our_message_ids_stay_one_line(bot) -> None:
    customer_mail(bot, subject="Dostawa")
    customer_mail(bot, subject="Faktura", sender="Ewa Nowak <ewa@klient.pl>")
    keys = [t["token_key"] for t in bot.tickets()]
    assert len(set(keys)) == 2 and all(len(k) == 16 for k in keys)
    for m in bot.outbox():
        token = bot.ctx.signer.parse(m["Message-ID"])
        assert token is not None
        own, other = keys[token.ticket_id - 1], keys[2 - token.ticket_id]
        assert bot.ctx.signer.verify(token, m["To"], own)
        assert not bot.ctx.signer.verify(token, m["To"], other)
    # The key is in the database, not in the token: the header is as short as before.
    for path in (bot.cfg.outbound.path / "new").iterdir():
        [line] = [x for x in path.read_bytes().split(b"\r\n") if x.startswith(b"Message-ID:")]
        assert line.endswith(b"@4dustry.com>") and len(line) <= 78


# -- a lost or damaged database ------------------------------------------------------------------


@pytest.fixture
def installed(tmp_path):
    """An install that has run: a database with a ticket, and its secret."""
    bot = Mailbot(tmp_path)
    customer_mail(bot, subject="Dostawa")
    bot.close()
    return bot.cfg


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_lost_database_is_refused_with_one_line(installed, capsys, state) -> None:
    path = database_path(installed)
    path.unlink()
    if state == "empty":
        path.write_bytes(b"")
    for command in (["run", "--once"], ["tickets"]):
        capsys.readouterr()
        assert main(["--config", str(installed.path), *command]) == 1
        [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("mailbot: ")]
        assert str(path) in line and f"is {state}" in line and "--new-database" in line
    assert not path.exists() or path.stat().st_size == 0  # nothing was made in its place
    assert main(["--config", str(installed.path), "run", "--once", "--new-database"]) == 0
    assert main(["--config", str(installed.path), "tickets", "--json"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("[]")


def _damage(path) -> None:
    """Garbage over a page in the middle of the file, as a bad sector or a torn copy leaves."""
    size = path.stat().st_size
    page = 4096
    with path.open("r+b") as handle:
        handle.seek((size // page // 2) * page)
        handle.write(b"\xff" * 64)


def test_a_damaged_database_is_refused_before_anything_listens(tmp_path, capsys) -> None:
    bot = Mailbot(tmp_path)
    for n in range(40):  # enough pages that the middle one is a table's
        customer_mail(bot, subject=f"Zamówienie {n}", body="Dzień dobry, proszę o fakturę. " * 40)
    bot.close()
    path = database_path(bot.cfg)
    _damage(path)
    capsys.readouterr()
    assert main(["--config", str(bot.cfg.path), "run", "--once"]) == 1
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.startswith("mailbot: ")]
    assert "is damaged" in line and str(path) in line
    daemon = Daemon(bot.cfg)
    with pytest.raises(CannotStart, match="is damaged"):
        daemon.start()
    assert daemon.listener is None and daemon.threads == []  # no 250 for mail we cannot keep
    assert daemon.lock is None  # the data directory is free for `mailbot restore`
