"""History import at scale: a generated mailbox with a Sent folder, replayed; figures checked.

    .venv/bin/python -m bench.history [--messages 20000] [--seed 2026]

Imports the archive of tests/history_archive.py (the test suite imports 2,000 messages of it)
and prints messages per second, peak RSS, and every figure the import and the report show
next to the value the generator counted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from mailbot.store import Store


def main(argv: list[str] | None = None) -> int:
    from mailbot import report
    from mailbot.sources.history import import_history
    from tests.helpers import Mailbot
    from tests.history_archive import archive

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory(prefix="mailbot-history-") as tmp:
        bot = Mailbot(Path(tmp))
        made = archive(Path(tmp), args.messages, now, bot.cfg, args.seed)
        began = time.perf_counter()
        summary = import_history(bot.ctx, [made.inbox], [made.sent], now=now)
        took = time.perf_counter() - began
        total = report.build(bot.ctx, now)["total"]
        store = bot.ctx.store
        want = made.expected
        figures = [
            ("messages", summary.messages, want.messages),
            ("tickets", summary.tickets, want.tickets),
            ("answered", total["answered"], want.answered),
            ("unanswered", summary.unanswered, want.unanswered),
            ("within SLA", total["within_sla"], want.within_sla),
            ("breached", total["breached"], want.breached),
            ("waiting on customer", store.count("tickets", status="pending"), want.pending),
            ("skipped as automatic", summary.automatic, want.automatic),
            ("quarantined", summary.quarantined, 0),
            ("outgoing mail", store.count("outbox"), 0),
            ("timers in the past", _past_timers(store, now), 0),
        ]
        bot.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{want.messages} messages in {took:.1f} s: {want.messages / took:.0f} messages/s,")
    print(f"peak RSS {rss:.0f} MiB")
    print(f"{'figure':<22}{'imported':>10}{'expected':>10}")
    for name, got, expected in figures:
        print(f"{name:<22}{got:>10}{expected:>10}{'' if got == expected else '  MISMATCH'}")
    return 0 if all(got == expected for _, got, expected in figures) else 1


def _past_timers(store: Store, now: datetime) -> int:
    return sum(
        datetime.fromisoformat(t["due_at"]) <= now for t in store.rows("timers", status="scheduled")
    )


if __name__ == "__main__":
    sys.exit(main())
