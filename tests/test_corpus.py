"""The whole third-party corpus goes through the pipeline: nothing escapes, robots get no answer."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mailbot.sources.files import import_paths
from mailbot.worker import process_pending
from tests.helpers import WARSAW_NOON, Mailbot

CUSTOMER_FACING = ("ack", "queued")
# One worker imports the corpus (`imported`, seconds of work) and runs every test that reads it.
pytestmark = pytest.mark.xdist_group("corpus-import")


@pytest.fixture(scope="module")
def imported(corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """Every message file of the corpus imported into one fresh mailbot (once per module)."""
    bot = Mailbot(tmp_path_factory.mktemp("corpus"))
    inventory = json.loads((corpus / "INVENTORY.json").read_text())["files"]
    paths = [
        corpus / rel
        for rel, info in inventory.items()
        if info.get("kind") != "body-only text (no headers) or HTML fragment"
    ]
    import_paths(bot.ctx.store, paths, now=WARSAW_NOON)
    counts = process_pending(bot.ctx, WARSAW_NOON)
    yield bot, counts, paths
    bot.close()


def test_every_corpus_message_ends_processed_ignored_or_quarantined(imported) -> None:
    bot, _, _ = imported
    rows = bot.ctx.store.inbound.listing()
    statuses = Counter(r["status"] for r in rows)
    assert statuses["pending"] == 0
    assert set(statuses) <= {"processed", "ignored", "duplicate", "quarantined"}
    assert all(r["reason"] for r in rows if r["status"] in {"ignored", "quarantined"})
    # No unexpected exception: quarantine only for mail that is not mail or names no sender.
    errors = [(r["reason"], r["error"]) for r in rows if r["error"] is not None]
    assert errors == [], errors[:3]
    assert statuses["processed"] > 200 and statuses["quarantined"] < 60


def test_no_bounce_or_auto_reply_in_the_corpus_is_acknowledged(corpus: Path, imported) -> None:
    bot, _, _ = imported
    expected = json.loads((corpus / "sisimai-set-of-emails/expected.json").read_text())["expected"]
    # A bounce a person forwarded to us ("Fwd: Returned mail") is a customer asking for help.
    forwarded = {"maildir-bsd/lhost-sendmail-14.eml"}
    robots = {
        str(corpus / "sisimai-set-of-emails" / rel) for rel in expected if rel not in forwarded
    }
    store = bot.ctx.store
    tickets = {o["ticket_id"] for o in store.rows("outbox") if o["template"] in CUSTOMER_FACING}
    answered = [r for r in store.inbound.listing() if r["ticket_id"] in tickets]
    leaked = [r["source_ref"] for r in answered if r["source_ref"] in robots]
    assert leaked == []
