"""Benchmark SLA arithmetic at report scale: `python -m bench.sla [TICKETS]` (default 1,000,000)."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailbot.sla import BusinessCalendar, Duration

WAW = ZoneInfo("Europe/Warsaw")


def _tickets(count: int) -> list[tuple[datetime, datetime]]:
    """Arrivals spread over three years, answered within zero to ten calendar days."""
    rng = random.Random(4)
    origin = datetime(2025, 1, 1, tzinfo=WAW)
    out = []
    for _ in range(count):
        arrival = origin + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        out.append((arrival, arrival + timedelta(seconds=rng.randrange(10 * 86400))))
    return out


def _measure(label: str, count: int, run: Callable[[], object]) -> None:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{label:<28} {elapsed:7.2f} s  {elapsed / count * 1e6:6.2f} µs/ticket")


def main(argv: list[str]) -> None:
    count = int(argv[0]) if argv else 1_000_000
    tickets = _tickets(count)
    two_days, four_hours = Duration(business_days=2), Duration(seconds=4 * 3600)
    cal = BusinessCalendar(WAW)  # one instance, as the daemon and `report` use it
    print(f"{count:,} tickets")
    _measure(
        "business_seconds_between",
        count,
        lambda: [cal.business_seconds_between(a, b) for a, b in tickets],
    )
    _measure(
        "first_response_due (2 bd)",
        count,
        lambda: [cal.first_response_due(a, two_days) for a, _ in tickets],
    )
    _measure(
        "subtract (4h warning)", count, lambda: [cal.subtract(b, four_hours) for _, b in tickets]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
