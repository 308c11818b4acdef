"""Calendar periods of retention settings: "365 days", "26 weeks", "6 months", "3 years"."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}
_PERIOD_RE = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """A length of calendar time; months and years keep the day of the month (clamped)."""

    count: int
    unit: str  # day week month year

    def before(self, moment: datetime) -> datetime:
        """`moment` less this period: 2027-03-31 less 1 month is 2027-02-28, same time."""
        if self.unit == "day":
            return moment - timedelta(days=self.count)
        if self.unit == "week":
            return moment - timedelta(weeks=self.count)
        months = self.count * (12 if self.unit == "year" else 1)
        index = moment.year * 12 + moment.month - 1 - months
        year, month = divmod(index, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        return moment.replace(year=year, month=month + 1, day=day)

    def __str__(self) -> str:
        return f"{self.count} {self.unit if self.count == 1 else UNITS[self.unit]}"


def parse_period(text: str) -> Period | None:
    """A period, or None for "" (keep forever); ValueError for anything else."""
    if not text.strip():
        return None
    match = _PERIOD_RE.match(text)
    if not match:
        raise ValueError(f"expected a period like '365 days', '6 months' or '3 years': {text!r}")
    count, unit = int(match.group(1)), match.group(2).lower()
    if count == 0:
        raise ValueError("must be at least 1 (use \"\" to keep forever)")
    return Period(count, unit)
