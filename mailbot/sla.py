"""Business-day calendar and SLA arithmetic (DESIGN §5): pure functions, no I/O.

Time conventions used throughout:

* Every input datetime must be timezone-aware (ValueError otherwise); every output is an aware
  datetime in the calendar's (or window's) ``tz``.
* Interval arithmetic is done in UTC. Python compares and subtracts two datetimes that share one
  ``tzinfo`` by their wall-clock fields, ignoring DST, so local values are never subtracted.
* Business *days* keep the wall-clock time (DESIGN §5): Fri 17:00 CET + 2 business days is
  Tue 17:00, even if a DST change happened in between.
* A wall-clock time that does not exist (spring-forward gap, e.g. 02:30 on the last Sunday of
  March in Warsaw) moves forward by the length of the gap (→ 03:30). An ambiguous wall-clock
  time (autumn fall-back) resolves to its first occurrence (summer time, ``fold=0``), i.e. the
  earlier instant, so a due time is never later than its clock reading suggests.
* A due time that the rule puts outside opening hours is promised as the last business
  moment before it (Thu 22:20 → Thu 18:00): the same business time, a time someone works.
* Business *seconds* are real elapsed seconds inside opening hours of business days.
* The only state shared between instances is a cache of per-year holiday tables (immutable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

# A calendar without one business day in ten years is a configuration error, not a loop to spin.
_MAX_SCAN_DAYS = 3660
_ONE_DAY = timedelta(days=1)
# Per-calendar memo of opening instants; cleared when full so a long-lived daemon stays bounded.
_MEMO_LIMIT = 20_000


# ---------------------------------------------------------------------------------------------
# Parsing helpers shared with the config loader
# ---------------------------------------------------------------------------------------------

_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


def parse_clock(text: str) -> time:
    """Parse a wall-clock time such as ``"08:00"`` or ``"8:30"``; ValueError otherwise."""
    match = _CLOCK_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid time {text!r}: expected HH:MM, e.g. '08:00'")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"invalid time {text!r}: hours 0-23, minutes 0-59")
    return time(hour, minute)


@dataclass(frozen=True)
class Duration:
    """An SLA length: whole business days (same wall-clock time) and/or business seconds."""

    business_days: int = 0
    seconds: int = 0  # business seconds: counted only inside opening hours of business days

    def __post_init__(self) -> None:
        for name in ("business_days", "seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Duration.{name} must be a non-negative int, got {value!r}")

    def __bool__(self) -> bool:
        return bool(self.business_days or self.seconds)

    def __str__(self) -> str:
        """As an admin writes it in config.toml: '2 business days', '4h', '1 business day 30m'."""
        parts = []
        if self.business_days:
            parts.append(f"{self.business_days} business day{'s' * (self.business_days != 1)}")
        hours, rest = divmod(self.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        units = ((hours, "h"), (minutes, "m"), (seconds, "s"))
        clock = "".join(f"{value}{unit}" for value, unit in units if value)
        return " ".join([*parts, clock] if clock else parts) or "0h"


# Longest spellings first, so "hours" is not read as "h" followed by junk.
_UNIT_PATTERNS = (
    ("days", r"(?:business|working)\s+days?"),
    ("seconds_h", r"(?:(?:business|working)\s+)?hours?|hrs?|h"),
    ("seconds_m", r"(?:(?:business|working)\s+)?minutes?|mins?|m"),
)
_PART_RE = re.compile(
    r"\s*(\d+)\s*(?:" + "|".join(f"(?P<{key}>{rx})" for key, rx in _UNIT_PATTERNS) + r")(?![a-z])"
)
_DURATION_EXAMPLES = "'2 business days', '1 business day', '4h', '30m', '1h30m', '8 business hours'"


def parse_duration(text: str) -> Duration:
    """Parse ``"2 business days"``, ``"4h"``, ``"90 minutes"``, ``"1h30m"``…; ValueError otherwise.

    Plain hours and minutes are business time (inside opening hours). Each unit may appear once;
    a zero total is rejected because no SLA or warning offset can mean it.
    """
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: expected text such as {_DURATION_EXAMPLES}")
    normalized = text.strip().lower()
    if not normalized:
        raise ValueError(f"empty duration: expected e.g. {_DURATION_EXAMPLES}")
    found: dict[str, int] = {}
    pos = 0
    while pos < len(normalized):
        match = _PART_RE.match(normalized, pos)
        if match is None:
            raise ValueError(_duration_error(text, normalized))
        unit = match.lastgroup or ""
        if unit in found:
            raise ValueError(f"invalid duration {text!r}: {unit.split('_')[-1]!r} unit repeated")
        found[unit] = int(match[1])
        pos = match.end()
    duration = Duration(
        business_days=found.get("days", 0),
        seconds=found.get("seconds_h", 0) * 3600 + found.get("seconds_m", 0) * 60,
    )
    if not duration:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    return duration


def _duration_error(text: str, normalized: str) -> str:
    if re.search(r"\bdays?\b", normalized) and not re.search(r"business|working", normalized):
        # Calendar days are deliberately not supported: the contract counts business days.
        return f"invalid duration {text!r}: write business days, e.g. '2 business days'"
    return f"invalid duration {text!r}: expected e.g. {_DURATION_EXAMPLES}"


# ---------------------------------------------------------------------------------------------
# Small shared helpers
# ---------------------------------------------------------------------------------------------


def _require_aware(moment: datetime, name: str = "moment") -> None:
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def _utc(day: date, clock: time, tz: tzinfo) -> datetime:
    """The UTC instant of wall-clock ``clock`` on ``day`` in ``tz`` (gap → forward, fold → first).

    With ``fold=0`` zoneinfo applies the pre-transition offset: inside a spring-forward gap that
    lands one gap-length later, for an ambiguous autumn time it picks the first occurrence.
    """
    naive = datetime.combine(day, clock.replace(tzinfo=None, fold=0))
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _local(day: date, clock: time, tz: tzinfo) -> datetime:
    return _utc(day, clock, tz).astimezone(tz)


@lru_cache(maxsize=1024)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """Public holidays of one country-year; cached because the holidays package is slow."""
    try:
        table = holidays.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError as exc:
        raise ValueError(f"holidays: {exc}") from exc
    # Observed days are attributed to the year they fall in, so a per-year lookup is complete.
    return frozenset(day for day in table if day.year == year)


def _check_country(country: str | None, subdivision: str | None) -> None:
    if country is None:
        if subdivision is not None:
            raise ValueError("a holiday subdivision needs a country")
        return
    try:
        # Without years nothing is computed: this only validates the codes.
        holidays.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:
        raise ValueError(f"holidays: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# The business calendar
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours on business days: configured weekdays minus public and extra holidays."""

    tz: ZoneInfo
    days: frozenset[int] = frozenset(range(5))  # Monday=0
    opens: time = time(8)
    closes: time = time(18)
    country: str | None = "PL"  # a `holidays` package country code; None for no public holidays
    subdivision: str | None = None
    extra_holidays: frozenset[date] = frozenset()
    # Opening hours per date: reports walk the same days for many tickets, and building the
    # instants (zone lookups) dominates the cost. Not part of equality, hash or repr.
    _hours_memo: dict[date, tuple[datetime, datetime] | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.tz, tzinfo):
            raise TypeError(f"tz must be a ZoneInfo, got {type(self.tz).__name__}")
        # Coerce so callers may pass lists/sets; the frozen instance must stay hashable.
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "extra_holidays", frozenset(self.extra_holidays))
        if not self.days or not self.days <= frozenset(range(7)):
            raise ValueError(f"days must be a non-empty set of weekdays 0-6, got {set(self.days)}")
        if any(isinstance(d, datetime) or not isinstance(d, date) for d in self.extra_holidays):
            raise ValueError("extra_holidays must contain dates")
        if self.opens.tzinfo is not None or self.closes.tzinfo is not None:
            raise ValueError("opens/closes are wall-clock times without tzinfo")
        if self.opens >= self.closes:
            raise ValueError(f"closes ({self.closes}) must be later than opens ({self.opens})")
        _check_country(self.country, self.subdivision)

    # -- days -----------------------------------------------------------------------------

    def is_business_day(self, day: date) -> bool:
        """True for a configured weekday that is neither a public nor an extra holiday."""
        if isinstance(day, datetime):
            # A datetime's date depends on its zone: make the caller choose it explicitly.
            raise TypeError("is_business_day takes a date; use moment.astimezone(cal.tz).date()")
        if day.weekday() not in self.days or day in self.extra_holidays:
            return False
        if self.country is None:
            return True
        return day not in _public_holidays(self.country, self.subdivision, day.year)

    def _step(self, day: date, step: int) -> date:
        """The nearest business day strictly after (step=1) or before (step=-1) ``day``."""
        delta = timedelta(days=step)
        for _ in range(_MAX_SCAN_DAYS):
            day += delta
            if self.is_business_day(day):
                return day
        raise ValueError(f"no business day within {_MAX_SCAN_DAYS} days of {day}")

    def add_business_days(self, moment: datetime, days: int) -> datetime:
        """DESIGN §5: same wall-clock time, ``days`` business days later (earlier if negative).

        Forwards, a moment on a non-business day first moves to the next business day (so
        ``days=0`` means "the next business day, same time"). Backwards, the first step from a
        non-business day lands on the previous business day. Opening hours do not matter here.
        """
        _require_aware(moment)
        local = moment.astimezone(self.tz)
        day = local.date()
        if days >= 0 and not self.is_business_day(day):
            day = self._step(day, 1)
        elif days == 0:
            return local  # keeps the instant exactly, including an ambiguous time's fold
        for _ in range(abs(days)):
            day = self._step(day, 1 if days > 0 else -1)
        return _local(day, local.time(), self.tz)

    # -- opening hours --------------------------------------------------------------------

    def _hours(self, day: date) -> tuple[datetime, datetime] | None:
        """Opening and closing instants (UTC) of ``day``, or None on a non-business day."""
        try:
            return self._hours_memo[day]
        except KeyError:
            pass
        hours = None
        if self.is_business_day(day):
            hours = _utc(day, self.opens, self.tz), _utc(day, self.closes, self.tz)
        if len(self._hours_memo) >= _MEMO_LIMIT:
            self._hours_memo.clear()
        self._hours_memo[day] = hours
        return hours

    def is_open(self, moment: datetime) -> bool:
        """True inside opening hours [opens, closes) of a business day."""
        _require_aware(moment)
        hours = self._hours(moment.astimezone(self.tz).date())
        return hours is not None and hours[0] <= moment.astimezone(UTC) < hours[1]

    def next_open(self, moment: datetime) -> datetime:
        """``moment`` itself if open, else the next opening instant."""
        _require_aware(moment)
        now = moment.astimezone(UTC)
        day = moment.astimezone(self.tz).date()
        hours = self._hours(day)
        if hours is not None and now < hours[1]:
            return max(now, hours[0]).astimezone(self.tz)
        return _local(self._step(day, 1), self.opens, self.tz)

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds of opening hours within [start, end); 0 when ``end <= start``. O(days)."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        lo, hi = start.astimezone(UTC), end.astimezone(UTC)
        if hi <= lo:
            return 0.0
        total = timedelta()
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        # Opening hours of a local date lie within that date, so local dates bound the walk.
        while day <= last:
            hours = self._hours(day)
            if hours is not None:
                overlap = min(hours[1], hi) - max(hours[0], lo)
                if overlap > timedelta():
                    total += overlap
            day += _ONE_DAY
        return total.total_seconds()

    def add_business_seconds(self, moment: datetime, seconds: float) -> datetime:
        """Move ``seconds`` of opening hours forward (backward if negative).

        Forwards, a moment outside hours starts at the next opening, and a result that falls
        exactly on a closing time stays there (Fri 14:00 + 4h = Fri 18:00, not Mon 08:00).
        Backwards, a moment outside hours starts at the previous closing, and a result that falls
        exactly on an opening time stays there.
        """
        _require_aware(moment)
        if seconds < 0:
            return self._rewind(moment, timedelta(seconds=-seconds))
        remaining = timedelta(seconds=seconds)
        now = moment.astimezone(UTC)
        day = moment.astimezone(self.tz).date()
        while True:
            hours = self._hours(day)
            if hours is not None and now < hours[1]:
                now = max(now, hours[0])
                if remaining <= hours[1] - now:
                    return (now + remaining).astimezone(self.tz)
                remaining -= hours[1] - now
            day = self._step(day, 1)

    def _rewind(self, moment: datetime, remaining: timedelta) -> datetime:
        now = moment.astimezone(UTC)
        day = moment.astimezone(self.tz).date()
        while True:
            hours = self._hours(day)
            if hours is not None and now > hours[0]:
                now = min(now, hours[1])
                if remaining <= now - hours[0]:
                    return (now - remaining).astimezone(self.tz)
                remaining -= now - hours[0]
            day = self._step(day, -1)

    # -- SLA ------------------------------------------------------------------------------

    def rule_due(self, arrival: datetime, sla: Duration) -> datetime:
        """The SLA rule itself: the business-days part (DESIGN §5), then the business seconds.

        May fall outside opening hours (Tue 22:20 + 2 business days = Thu 22:20); what is
        promised is `first_response_due`.
        """
        _require_aware(arrival, "arrival")
        due = arrival.astimezone(self.tz)
        if sla.business_days:
            due = self.add_business_days(due, sla.business_days)
        if sla.seconds:
            due = self.add_business_seconds(due, sla.seconds)
        return due

    def first_response_due(self, arrival: datetime, sla: Duration) -> datetime:
        """The promised due time: the latest business moment not after the rule's due time.

        Tue 22:20 + 2 business days is Thu 22:20 by the rule, a time nobody works; the
        customer is promised Thu 18:00 instead (Sat 03:00 → Tue 18:00, Mon 07:00 → Tue 18:00).
        No opening hours lie between the two, so agents get exactly the same business time.
        A rule due time inside opening hours (the DESIGN §5 examples) is kept as it is, and so
        is the arrival for a zero SLA.
        """
        if not sla:
            return self.rule_due(arrival, sla)
        return self.last_business_moment(self.rule_due(arrival, sla))

    def last_business_moment(self, moment: datetime) -> datetime:
        """``moment`` itself inside opening hours [opens, closes], else the previous closing."""
        _require_aware(moment)
        now = moment.astimezone(UTC)
        day = moment.astimezone(self.tz).date()
        hours = self._hours(day)
        if hours is not None and hours[0] <= now <= hours[1]:
            return moment.astimezone(self.tz)  # keeps an ambiguous time's fold
        if hours is None or now < hours[0]:
            day = self._step(day, -1)
            hours = self._hours(day)
            assert hours is not None  # _step only returns business days
        return hours[1].astimezone(self.tz)

    def subtract(self, due: datetime, before: Duration) -> datetime:
        """The moment ``before`` ahead of ``due`` (for warnings such as "4h" before due).

        Undoes ``rule_due`` in reverse order: business seconds back first, then business days
        back at the same wall-clock time. A zero Duration returns ``due``.
        """
        _require_aware(due, "due")
        moment = due.astimezone(self.tz)
        if before.seconds:
            moment = self.add_business_seconds(moment, -before.seconds)
        if before.business_days:
            moment = self.add_business_days(moment, -before.business_days)
        return moment


# ---------------------------------------------------------------------------------------------
# Every-day windows (the account manager's "07:00-22:00")
# ---------------------------------------------------------------------------------------------

_WINDOW_RE = re.compile(r"\s*(\S+?)\s*[-–]\s*(\S+)\s*")


@dataclass(frozen=True)
class DailyWindow:
    """A wall-clock window repeated every day; ``start > end`` wraps past midnight."""

    start: time
    end: time
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"empty window {self.start:%H:%M}-{self.end:%H:%M}")

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo) -> DailyWindow:
        """Parse ``"07:00-22:00"`` (``"22:00-06:00"`` wraps midnight); ValueError otherwise."""
        match = _WINDOW_RE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"invalid window {text!r}: expected HH:MM-HH:MM, e.g. '07:00-22:00'")
        try:
            return cls(parse_clock(match[1]), parse_clock(match[2]), tz)
        except ValueError as exc:
            raise ValueError(f"invalid window {text!r}: {exc}") from exc

    def contains(self, moment: datetime) -> bool:
        """True when the wall-clock time of ``moment`` in ``tz`` is in [start, end)."""
        _require_aware(moment)
        clock = moment.astimezone(self.tz).time()
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def next_start(self, moment: datetime) -> datetime:
        """``moment`` itself if inside the window, else the next window start."""
        _require_aware(moment)
        local = moment.astimezone(self.tz)
        if self.contains(local):
            return local
        day = local.date()
        if local.time() >= self.start:
            day += _ONE_DAY
        return _local(day, self.start, self.tz)
