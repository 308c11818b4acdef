"""Tests for mailbot.sla: the DESIGN §5 contract, holidays, DST and SLA arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mailbot import sla
from mailbot.sla import BusinessCalendar, DailyWindow, Duration, parse_clock, parse_duration

WAW = ZoneInfo("Europe/Warsaw")
HOUR = 3600
TWO_DAYS = Duration(business_days=2)


def waw(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=WAW, fold=fold)  # type: ignore[misc]


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return BusinessCalendar(WAW)


def test_holidays_package_has_christmas_eve_for_poland() -> None:
    # A public holiday since 2025; older `holidays` releases lack it and break the contract.
    assert date(2026, 12, 24) in holidays.country_holidays("PL", years=2026)


# --- DESIGN §5 contract --------------------------------------------------------------------------

CONTRACT = [
    (waw(2026, 11, 28, 9), waw(2026, 12, 2, 9)),  # Saturday → Wednesday
    (waw(2026, 11, 30, 10), waw(2026, 12, 2, 10)),  # Monday → Wednesday
    (waw(2026, 11, 27, 17), waw(2026, 12, 1, 17)),  # Friday → Tuesday
    (waw(2026, 12, 23, 10), waw(2026, 12, 29, 10)),  # 24–26 Dec are holidays
]


@pytest.mark.parametrize(("arrival", "due"), CONTRACT)
def test_contract_examples(cal: BusinessCalendar, arrival: datetime, due: datetime) -> None:
    result = cal.first_response_due(arrival, parse_duration("2 business days"))
    assert result == due
    assert result.tzinfo is WAW
    assert result.utcoffset() == due.utcoffset()


@pytest.mark.parametrize(("arrival", "due"), CONTRACT)
def test_contract_examples_given_in_utc(
    cal: BusinessCalendar, arrival: datetime, due: datetime
) -> None:
    result = cal.first_response_due(arrival.astimezone(UTC), TWO_DAYS)
    assert result == due
    assert result.tzinfo is WAW


def test_default_calendar_is_the_contract_one() -> None:
    cal = BusinessCalendar(WAW)
    assert cal.days == frozenset(range(5))
    assert (cal.opens, cal.closes) == (time(8), time(18))
    assert cal.country == "PL"


# --- holidays ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2027, 3, 29),  # Easter Monday 2027
        date(2026, 4, 6),  # Easter Monday 2026
        date(2026, 5, 1),  # Labour Day (Friday)
        date(2028, 5, 3),  # Constitution Day (Wednesday)
        date(2027, 5, 3),  # Constitution Day (Monday)
        date(2026, 11, 11),  # Independence Day
        date(2026, 12, 24),
        date(2026, 12, 25),
        date(2027, 5, 27),  # Corpus Christi 2027
        date(2026, 6, 4),  # Corpus Christi 2026
        date(2027, 1, 6),  # Epiphany
    ],
)
def test_polish_holidays_are_not_business_days(cal: BusinessCalendar, day: date) -> None:
    assert day.weekday() < 5
    assert not cal.is_business_day(day)


def test_ordinary_days(cal: BusinessCalendar) -> None:
    assert cal.is_business_day(date(2026, 12, 23))
    assert cal.is_business_day(date(2026, 12, 28))
    assert not cal.is_business_day(date(2026, 11, 28))  # Saturday
    assert not cal.is_business_day(date(2026, 11, 29))  # Sunday


def test_is_business_day_refuses_datetimes(cal: BusinessCalendar) -> None:
    with pytest.raises(TypeError):
        cal.is_business_day(waw(2026, 12, 23, 10))


def test_due_across_easter_monday(cal: BusinessCalendar) -> None:
    # Fri 26 Mar 2027 → (Mon 29 Easter Monday) → Tue 30, Wed 31; DST also changed on the Sunday.
    due = cal.first_response_due(waw(2027, 3, 26, 17), TWO_DAYS)
    assert due == waw(2027, 3, 31, 17)
    assert due.utcoffset() == timedelta(hours=2)


def test_due_across_may_holidays(cal: BusinessCalendar) -> None:
    # Fri 30 Apr 2027: Sat 1 May, Sun, Mon 3 May holiday → Tue 4, Wed 5.
    assert cal.first_response_due(waw(2027, 4, 30, 12), TWO_DAYS) == waw(2027, 5, 5, 12)


def test_due_across_independence_day(cal: BusinessCalendar) -> None:
    assert cal.first_response_due(waw(2026, 11, 10, 9), TWO_DAYS) == waw(2026, 11, 13, 9)


def test_due_across_corpus_christi(cal: BusinessCalendar) -> None:
    assert cal.first_response_due(waw(2027, 5, 26, 15), TWO_DAYS) == waw(2027, 5, 31, 15)


def test_extra_holidays_from_config() -> None:
    cal = BusinessCalendar(WAW, extra_holidays=frozenset({date(2026, 12, 31)}))
    assert not cal.is_business_day(date(2026, 12, 31))
    # Thu 31 (extra), Fri 1 Jan (public) → Mon 4, Tue 5 Jan.
    assert cal.first_response_due(waw(2026, 12, 30, 10), TWO_DAYS) == waw(2027, 1, 5, 10)
    assert BusinessCalendar(WAW).first_response_due(waw(2026, 12, 30, 10), TWO_DAYS) == waw(
        2027, 1, 4, 10
    )


def test_no_country_means_no_public_holidays() -> None:
    cal = BusinessCalendar(WAW, country=None)
    assert cal.is_business_day(date(2026, 12, 24))
    assert cal.first_response_due(waw(2026, 12, 23, 10), TWO_DAYS) == waw(2026, 12, 25, 10)


def test_holiday_tables_are_built_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = holidays.country_holidays

    def counting(*args: object, **kwargs: object) -> object:
        if kwargs.get("years") is not None:
            built.append(kwargs["years"])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sla.holidays, "country_holidays", counting)
    sla._public_holidays.cache_clear()
    for _ in range(3):
        cal = BusinessCalendar(WAW)  # a fresh instance each time still shares the tables
        cal.business_seconds_between(waw(2030, 1, 1), waw(2031, 12, 31))
    assert sorted(built) == [2030, 2031]  # type: ignore[type-var]


# --- custom weekdays -----------------------------------------------------------------------------


def test_monday_to_saturday() -> None:
    cal = BusinessCalendar(WAW, days=frozenset(range(6)))
    assert cal.is_business_day(date(2026, 11, 28))
    assert cal.first_response_due(waw(2026, 11, 27, 17), TWO_DAYS) == waw(2026, 11, 30, 17)
    assert cal.first_response_due(waw(2026, 11, 28, 9), TWO_DAYS) == waw(2026, 12, 1, 9)
    assert cal.first_response_due(waw(2026, 11, 29, 9), TWO_DAYS) == waw(2026, 12, 2, 9)


def test_days_may_be_given_as_any_iterable() -> None:
    cal = BusinessCalendar(WAW, days=[0, 2, 4])  # type: ignore[arg-type]
    assert cal.days == frozenset({0, 2, 4})
    assert cal.first_response_due(waw(2026, 11, 30, 10), TWO_DAYS) == waw(2026, 12, 4, 10)
    hash(cal)


# --- Sunday night and non-business arrivals ------------------------------------------------------


def test_arrival_on_sunday_night(cal: BusinessCalendar) -> None:
    # The rule: Monday counts, Wednesday 23:30; promised: the closing before it.
    assert cal.rule_due(waw(2026, 11, 29, 23, 30), TWO_DAYS) == waw(2026, 12, 2, 23, 30)
    assert cal.first_response_due(waw(2026, 11, 29, 23, 30), TWO_DAYS) == waw(2026, 12, 2, 18)


def test_sunday_night_utc_is_monday_in_warsaw(cal: BusinessCalendar) -> None:
    # 23:30Z on Sunday is 00:30 on Monday in Warsaw: Monday counts, rule due Wednesday 00:30,
    # which is promised as Tuesday 18:00 (no opening hours lie between the two).
    arrival = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert cal.rule_due(arrival, TWO_DAYS) == waw(2026, 12, 2, 0, 30)
    assert cal.first_response_due(arrival, TWO_DAYS) == waw(2026, 12, 1, 18)


def test_business_day_after_hours_keeps_wall_clock_in_the_rule(cal: BusinessCalendar) -> None:
    # The rule moves only non-business *days*; the promise is the last business moment.
    assert cal.rule_due(waw(2026, 11, 30, 21), TWO_DAYS) == waw(2026, 12, 2, 21)
    assert cal.first_response_due(waw(2026, 11, 30, 21), TWO_DAYS) == waw(2026, 12, 2, 18)


# --- the promise: the latest business moment not after the rule's due time (#12) ----------------

NIGHT_DUES = [
    (waw(2026, 12, 1, 22, 20), waw(2026, 12, 3, 18)),  # Tue 22:20 → Thu 18:00 (rule Thu 22:20)
    (waw(2026, 11, 28, 3), waw(2026, 12, 1, 18)),  # Sat 03:00 → Tue 18:00 (rule Wed 03:00)
    (waw(2026, 11, 30, 7), waw(2026, 12, 1, 18)),  # Mon 07:00 → Tue 18:00 (rule Wed 07:00)
    (waw(2026, 11, 30, 18), waw(2026, 12, 2, 18)),  # exactly 18:00: closing counts, kept
    (waw(2026, 11, 30, 18, 1), waw(2026, 12, 2, 18)),  # a minute after closing
    (waw(2026, 11, 30, 8), waw(2026, 12, 2, 8)),  # exactly 08:00: opening, kept
    (waw(2026, 11, 30, 7, 59), waw(2026, 12, 1, 18)),  # a minute before opening
    (waw(2026, 12, 23, 22), waw(2026, 12, 29, 18)),  # over Christmas: rule Tue 29 22:00
    (waw(2026, 12, 22, 7), waw(2026, 12, 23, 18)),  # rule Mon 28 07:00: back over the holidays
    (waw(2026, 11, 10, 7), waw(2026, 11, 12, 18)),  # rule Fri 13 07:00; 11 Nov is a holiday
    (waw(2026, 3, 27, 20), waw(2026, 3, 31, 18)),  # Fri CET → Tue CEST (spring DST weekend)
    (waw(2026, 3, 29, 1, 30), waw(2026, 3, 31, 18)),  # Sun before the spring gap
    (waw(2026, 10, 24, 3), waw(2026, 10, 27, 18)),  # Sat CEST → Tue CET (autumn DST weekend)
    (waw(2026, 10, 25, 2, 30, fold=1), waw(2026, 10, 27, 18)),  # the repeated hour, 2nd time
]


@pytest.mark.parametrize(("arrival", "due"), NIGHT_DUES)
def test_due_outside_hours_is_promised_as_the_last_business_moment(
    cal: BusinessCalendar, arrival: datetime, due: datetime
) -> None:
    promised = cal.first_response_due(arrival, TWO_DAYS)
    assert promised == due
    assert (promised.hour, promised.minute) == (due.hour, due.minute)
    assert promised.utcoffset() == due.utcoffset()
    rule = cal.rule_due(arrival, TWO_DAYS)
    assert promised <= rule
    # Agents get exactly the business time the rule gives them.
    assert cal.business_seconds_between(arrival, promised) == cal.business_seconds_between(
        arrival, rule
    )
    assert cal.business_seconds_between(arrival, promised) == 20 * HOUR


def test_one_business_day_sla_outside_hours(cal: BusinessCalendar) -> None:
    one_day = Duration(business_days=1)
    assert cal.first_response_due(waw(2026, 12, 1, 22, 20), one_day) == waw(2026, 12, 2, 18)
    assert cal.first_response_due(waw(2026, 11, 28, 3), one_day) == waw(2026, 11, 30, 18)
    assert cal.first_response_due(waw(2026, 11, 30, 7), one_day) == waw(2026, 11, 30, 18)


def test_last_business_moment(cal: BusinessCalendar) -> None:
    assert cal.last_business_moment(waw(2026, 12, 2, 12, 34)) == waw(2026, 12, 2, 12, 34)
    assert cal.last_business_moment(waw(2026, 12, 2, 18)) == waw(2026, 12, 2, 18)
    assert cal.last_business_moment(waw(2026, 12, 2, 8)) == waw(2026, 12, 2, 8)
    assert cal.last_business_moment(waw(2026, 12, 2, 7, 59, 59)) == waw(2026, 12, 1, 18)
    assert cal.last_business_moment(waw(2026, 12, 6, 12)) == waw(2026, 12, 4, 18)  # Sunday
    assert cal.last_business_moment(waw(2026, 12, 28, 3)) == waw(2026, 12, 23, 18)  # Christmas
    utc = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)  # 12:00 in Warsaw: same instant, Warsaw zone
    assert cal.last_business_moment(utc) == utc and cal.last_business_moment(utc).tzinfo is WAW


def test_seconds_sla_starts_at_next_opening(cal: BusinessCalendar) -> None:
    assert cal.first_response_due(waw(2026, 11, 28, 9), parse_duration("4h")) == waw(
        2026, 11, 30, 12
    )
    assert cal.first_response_due(waw(2026, 11, 27, 15), parse_duration("4h")) == waw(
        2026, 11, 30, 9
    )


def test_mixed_duration(cal: BusinessCalendar) -> None:
    sla_ = Duration(business_days=1, seconds=4 * HOUR)
    # Mon 16:00 → Tue 16:00 → +2h Tue, +2h Wed → Wed 10:00.
    assert cal.first_response_due(waw(2026, 11, 30, 16), sla_) == waw(2026, 12, 2, 10)
    assert cal.subtract(waw(2026, 12, 2, 10), sla_) == waw(2026, 11, 30, 16)


def test_zero_duration_is_identity(cal: BusinessCalendar) -> None:
    moment = waw(2026, 11, 28, 9)
    assert cal.first_response_due(moment, Duration()) == moment
    assert cal.subtract(moment, Duration()) == moment


# --- DST (last Sunday of March / October in Warsaw) ----------------------------------------------


def test_dst_spring_keeps_wall_clock(cal: BusinessCalendar) -> None:
    due = cal.first_response_due(waw(2026, 3, 27, 10), TWO_DAYS)  # Fri CET
    assert due == waw(2026, 3, 31, 10)  # Tue CEST
    assert (due.hour, due.utcoffset()) == (10, timedelta(hours=2))


def test_dst_autumn_keeps_wall_clock(cal: BusinessCalendar) -> None:
    due = cal.first_response_due(waw(2026, 10, 23, 10), TWO_DAYS)  # Fri CEST
    assert due == waw(2026, 10, 27, 10)  # Tue CET
    assert (due.hour, due.utcoffset()) == (10, timedelta(hours=1))


def test_dst_weekend_does_not_change_business_seconds(cal: BusinessCalendar) -> None:
    assert cal.business_seconds_between(waw(2026, 10, 23, 8), waw(2026, 10, 26, 18)) == 20 * HOUR
    assert cal.business_seconds_between(waw(2026, 3, 27, 8), waw(2026, 3, 30, 18)) == 20 * HOUR


@pytest.fixture(scope="module")
def night_cal() -> BusinessCalendar:
    # Every day 01:00–05:00: opening hours that contain the DST transitions themselves.
    return BusinessCalendar(
        WAW, days=frozenset(range(7)), opens=time(1), closes=time(5), country=None
    )


def test_dst_short_and_long_days(night_cal: BusinessCalendar) -> None:
    def one_day(d: date) -> float:
        midnight = datetime.combine(d, time(0), WAW)
        return night_cal.business_seconds_between(midnight, midnight.replace(hour=23))

    assert one_day(date(2027, 3, 27)) == 4 * HOUR
    assert one_day(date(2027, 3, 28)) == 3 * HOUR  # 02:00 → 03:00 skipped
    assert one_day(date(2026, 10, 25)) == 5 * HOUR  # 02:00–03:00 lived twice


def test_nonexistent_wall_clock_moves_forward(night_cal: BusinessCalendar) -> None:
    # 02:30 does not exist on 28 Mar 2027: the gap is skipped, giving 03:30 CEST.
    due = night_cal.add_business_days(waw(2027, 3, 27, 2, 30), 1)
    assert due == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert (due.hour, due.minute, due.utcoffset()) == (3, 30, timedelta(hours=2))


def test_ambiguous_wall_clock_takes_first_occurrence(night_cal: BusinessCalendar) -> None:
    due = night_cal.add_business_days(waw(2026, 10, 24, 2, 30), 1)
    # Compared in UTC: Python never finds an ambiguous local time equal to another zone's.
    assert due.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # the CEST one
    assert due.utcoffset() == timedelta(hours=2)


def test_ambiguous_arrival_with_zero_days_is_kept(night_cal: BusinessCalendar) -> None:
    second = waw(2026, 10, 25, 2, 30, fold=1)  # 02:30 CET, the later occurrence
    assert night_cal.add_business_days(second, 0) == second


def test_add_business_seconds_through_dst_gap(night_cal: BusinessCalendar) -> None:
    # Sun 28 Mar 2027 01:30 CET + 2h of business time: 01:30→02:00 CET, then 03:00→04:30 CEST.
    assert night_cal.add_business_seconds(waw(2027, 3, 28, 1, 30), 2 * HOUR) == waw(
        2027, 3, 28, 4, 30
    )


# --- business_seconds_between --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        (waw(2026, 11, 30, 9), waw(2026, 11, 30, 11, 30), 2.5),  # same day
        (waw(2026, 11, 30, 6), waw(2026, 11, 30, 20), 10),  # clipped to opening hours
        (waw(2026, 11, 30, 18), waw(2026, 12, 1, 8), 0),  # closed all night
        (waw(2026, 11, 30, 17), waw(2026, 12, 1, 9), 2),  # overnight
        (waw(2026, 11, 27, 17), waw(2026, 11, 30, 9), 2),  # weekend
        (waw(2026, 11, 27, 17), waw(2026, 11, 30, 8), 1),  # ends at opening
        (waw(2026, 11, 28, 9), waw(2026, 11, 29, 20), 0),  # inside a weekend
        (waw(2026, 12, 23, 17), waw(2026, 12, 28, 9), 2),  # Christmas
        (waw(2026, 11, 10, 12), waw(2026, 11, 12, 12), 10),  # 11 Nov
        (waw(2026, 11, 30, 10), waw(2026, 11, 30, 10), 0),  # empty
        (waw(2026, 11, 30, 11), waw(2026, 11, 30, 10), 0),  # reversed
    ],
)
def test_business_seconds_between(
    cal: BusinessCalendar, start: datetime, end: datetime, hours: float
) -> None:
    assert cal.business_seconds_between(start, end) == hours * HOUR


def test_business_seconds_between_mixed_zones(cal: BusinessCalendar) -> None:
    start = datetime(2026, 11, 30, 8, tzinfo=UTC)  # 09:00 Warsaw
    assert cal.business_seconds_between(start, waw(2026, 11, 30, 11)) == 2 * HOUR


def test_business_seconds_over_a_year(cal: BusinessCalendar) -> None:
    # 2026: 261 weekdays, 8 of them public holidays (1 and 6 Jan, 6 Apr, 1 May, 4 Jun, 11 Nov,
    # 24 and 25 Dec) → 253 business days of 10 hours.
    assert cal.business_seconds_between(waw(2026, 1, 1), waw(2027, 1, 1)) == 253 * 10 * HOUR


def test_business_seconds_over_decades_is_fast(cal: BusinessCalendar) -> None:
    import time as clock

    started = clock.perf_counter()
    seconds = cal.business_seconds_between(waw(2000, 1, 1), waw(2050, 1, 1))
    assert clock.perf_counter() - started < 5
    assert 250 * 50 * 10 * HOUR < seconds < 255 * 50 * 10 * HOUR


# --- opening hours -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (waw(2026, 11, 30, 12), waw(2026, 11, 30, 12)),  # open: itself
        (waw(2026, 11, 30, 8), waw(2026, 11, 30, 8)),  # opening minute is open
        (waw(2026, 11, 30, 7), waw(2026, 11, 30, 8)),
        (waw(2026, 11, 30, 18), waw(2026, 12, 1, 8)),  # closing is exclusive
        (waw(2026, 11, 28, 10), waw(2026, 11, 30, 8)),  # Saturday
        (waw(2026, 12, 23, 18, 30), waw(2026, 12, 28, 8)),  # Christmas
    ],
)
def test_next_open(cal: BusinessCalendar, moment: datetime, expected: datetime) -> None:
    assert cal.next_open(moment) == expected
    assert cal.is_open(moment) == (moment == expected)


def test_add_business_seconds(cal: BusinessCalendar) -> None:
    assert cal.add_business_seconds(waw(2026, 11, 27, 14), 4 * HOUR) == waw(2026, 11, 27, 18)
    assert cal.add_business_seconds(waw(2026, 11, 27, 15), 4 * HOUR) == waw(2026, 11, 30, 9)
    assert cal.add_business_seconds(waw(2026, 11, 28, 10), 1800) == waw(2026, 11, 30, 8, 30)
    assert cal.add_business_seconds(waw(2026, 11, 28, 10), 0) == waw(2026, 11, 30, 8)
    assert cal.add_business_seconds(waw(2026, 12, 23, 17), 2 * HOUR) == waw(2026, 12, 28, 9)


def test_add_negative_business_seconds(cal: BusinessCalendar) -> None:
    assert cal.add_business_seconds(waw(2026, 11, 30, 10), -2 * HOUR) == waw(2026, 11, 30, 8)
    assert cal.add_business_seconds(waw(2026, 11, 30, 10), -3 * HOUR) == waw(2026, 11, 27, 17)
    assert cal.add_business_seconds(waw(2026, 11, 29, 10), -HOUR) == waw(2026, 11, 27, 17)


def test_add_business_days_backwards(cal: BusinessCalendar) -> None:
    assert cal.add_business_days(waw(2026, 12, 28, 10), -1) == waw(2026, 12, 23, 10)
    assert cal.add_business_days(waw(2026, 11, 28, 9), -1) == waw(2026, 11, 27, 9)  # Sat → Fri
    assert cal.add_business_days(waw(2026, 11, 28, 9), 0) == waw(2026, 11, 30, 9)  # Sat → Mon


# --- warnings before due -------------------------------------------------------------------------

WARNINGS = [
    # due, 1 business day before, 4h before
    (waw(2026, 12, 2, 9), waw(2026, 12, 1, 9), waw(2026, 12, 1, 15)),
    (waw(2026, 12, 2, 10), waw(2026, 12, 1, 10), waw(2026, 12, 1, 16)),
    (waw(2026, 12, 1, 17), waw(2026, 11, 30, 17), waw(2026, 12, 1, 13)),
    (waw(2026, 12, 29, 10), waw(2026, 12, 28, 10), waw(2026, 12, 28, 16)),
]


@pytest.mark.parametrize(("due", "day_before", "hours_before"), WARNINGS)
def test_warnings_before_contract_due_times(
    cal: BusinessCalendar, due: datetime, day_before: datetime, hours_before: datetime
) -> None:
    assert cal.subtract(due, parse_duration("1 business day")) == day_before
    assert cal.subtract(due, parse_duration("4h")) == hours_before


def test_warning_before_due_outside_hours(cal: BusinessCalendar) -> None:
    # Due Wed 21:00 (arrived Mon 21:00): 4h before counts back from the 18:00 closing.
    assert cal.subtract(waw(2026, 12, 2, 21), parse_duration("4h")) == waw(2026, 12, 2, 14)
    assert cal.subtract(waw(2026, 12, 28, 10), parse_duration("1 business day")) == waw(
        2026, 12, 23, 10
    )


@pytest.mark.parametrize(("arrival", "due"), CONTRACT)
def test_subtract_undoes_due(cal: BusinessCalendar, arrival: datetime, due: datetime) -> None:
    start = cal.add_business_days(arrival, 0)  # Saturday arrival counts from Monday
    assert cal.subtract(due, TWO_DAYS) == start


# --- naive datetimes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c, n: c.add_business_days(n, 1),
        lambda c, n: c.first_response_due(n, TWO_DAYS),
        lambda c, n: c.business_seconds_between(n, n),
        lambda c, n: c.business_seconds_between(waw(2026, 1, 1), n),
        lambda c, n: c.add_business_seconds(n, 60),
        lambda c, n: c.subtract(n, TWO_DAYS),
        lambda c, n: c.next_open(n),
        lambda c, n: c.is_open(n),
        lambda c, n: DailyWindow.parse("07:00-22:00", WAW).contains(n),
        lambda c, n: DailyWindow.parse("07:00-22:00", WAW).next_start(n),
    ],
)
def test_naive_datetimes_are_rejected(cal: BusinessCalendar, call: object) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call(cal, datetime(2026, 11, 30, 10))  # type: ignore[operator]


# --- calendar validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"country": "XX"},
        {"subdivision": "ZZ"},
        {"country": None, "subdivision": "02"},
        {"opens": time(18), "closes": time(8)},
        {"opens": time(8), "closes": time(8)},
        {"days": frozenset()},
        {"days": frozenset({7})},
        {"extra_holidays": frozenset({datetime(2026, 12, 31, tzinfo=UTC)})},
    ],
)
def test_invalid_calendars(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(WAW, **kwargs)  # type: ignore[arg-type]


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 business days", Duration(business_days=2)),
        ("1 business day", Duration(business_days=1)),
        ("  2  Business  Days ", Duration(business_days=2)),
        ("3 working days", Duration(business_days=3)),
        ("4h", Duration(seconds=4 * HOUR)),
        ("30m", Duration(seconds=1800)),
        ("90 minutes", Duration(seconds=5400)),
        ("2 hours", Duration(seconds=2 * HOUR)),
        ("1 hour", Duration(seconds=HOUR)),
        ("1h30m", Duration(seconds=5400)),
        ("1h 30m", Duration(seconds=5400)),
        ("1 hour 30 minutes", Duration(seconds=5400)),
        ("8 business hours", Duration(seconds=8 * HOUR)),
        ("45 min", Duration(seconds=2700)),
        ("1 business day 4h", Duration(business_days=1, seconds=4 * HOUR)),
    ],
)
def test_parse_duration_accepts(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("2 days", "business days"),
        ("1 day", "business days"),
        ("0h", "longer than zero"),
        ("0 business days", "longer than zero"),
        ("1.5h", "expected"),
        ("-4h", "expected"),
        ("h", "expected"),
        ("4", "expected"),
        ("4x", "expected"),
        ("4 hoursx", "expected"),
        ("2 weeks", "expected"),
        ("1h 2h", "repeated"),
        ("four hours", "expected"),
        ("4h later", "expected"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_duration_validates_fields() -> None:
    with pytest.raises(ValueError):
        Duration(business_days=-1)
    with pytest.raises(ValueError):
        Duration(seconds=1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("08:00", time(8)), ("8:30", time(8, 30)), (" 23:59 ", time(23, 59)), ("0:00", time(0))],
)
def test_parse_clock_accepts(text: str, expected: time) -> None:
    assert parse_clock(text) == expected


@pytest.mark.parametrize("text", ["", "8", "8h", "24:00", "08:60", "08:00:00", "8.30", "ab:cd"])
def test_parse_clock_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid time"):
        parse_clock(text)


# --- DailyWindow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def window() -> DailyWindow:
    return DailyWindow.parse("07:00-22:00", WAW)


def test_window_parse(window: DailyWindow) -> None:
    assert window == DailyWindow(time(7), time(22), WAW)
    assert DailyWindow.parse(" 7:00 - 22:00 ", WAW) == window


@pytest.mark.parametrize("text", ["", "07:00", "7-22", "07:00-07:00", "25:00-26:00", "a-b"])
def test_window_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="window"):
        DailyWindow.parse(text, WAW)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (waw(2026, 11, 28, 7), True),  # any day, weekends included
        (waw(2026, 11, 28, 21, 59), True),
        (waw(2026, 11, 28, 22), False),
        (waw(2026, 11, 28, 6, 59), False),
        (datetime(2026, 11, 28, 6, 30, tzinfo=UTC), True),  # 07:30 in Warsaw
    ],
)
def test_window_contains(window: DailyWindow, moment: datetime, inside: bool) -> None:
    assert window.contains(moment) is inside


def test_window_next_start(window: DailyWindow) -> None:
    assert window.next_start(waw(2026, 11, 28, 23, 30)) == waw(2026, 11, 29, 7)
    assert window.next_start(waw(2026, 11, 28, 5)) == waw(2026, 11, 28, 7)
    assert window.next_start(waw(2026, 11, 28, 12)) == waw(2026, 11, 28, 12)
    assert window.next_start(waw(2027, 3, 27, 23, 30)).utcoffset() == timedelta(hours=2)
    result = window.next_start(datetime(2026, 11, 28, 22, 30, tzinfo=UTC))
    assert result == waw(2026, 11, 29, 7)
    assert result.tzinfo is WAW


def test_window_wrapping_midnight() -> None:
    night = DailyWindow.parse("22:00-06:00", WAW)
    assert night.contains(waw(2026, 11, 28, 23))
    assert night.contains(waw(2026, 11, 29, 5, 59))
    assert not night.contains(waw(2026, 11, 29, 6))
    assert night.next_start(waw(2026, 11, 29, 12)) == waw(2026, 11, 29, 22)
    assert night.next_start(waw(2026, 11, 29, 1)) == waw(2026, 11, 29, 1)


# --- properties ----------------------------------------------------------------------------------

CAL = BusinessCalendar(WAW)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.just(WAW),
    allow_imaginary=False,
)
business_dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31)).filter(
    CAL.is_business_day
)
OPEN_MICROS = 10 * HOUR * 10**6


def _inside_hours(day: date, micros: int) -> datetime:
    # Warsaw changes clocks only on Sundays, so wall-clock arithmetic is exact on business days.
    return datetime.combine(day, time(8), WAW) + timedelta(microseconds=micros)


@settings(deadline=None)
@given(arrival=moments, days=st.integers(min_value=1, max_value=15))
def test_rule_due_is_a_business_day_at_the_same_wall_clock(arrival: datetime, days: int) -> None:
    due = CAL.rule_due(arrival, Duration(business_days=days))
    assert due.tzinfo is WAW
    assert CAL.is_business_day(due.date())
    assert due.time() == arrival.time()
    assert due.astimezone(UTC) > arrival.astimezone(UTC)
    # Exactly `days` business days after the arrival's own day (or the next business day).
    start = CAL.add_business_days(arrival, 0).date()
    between = [start + timedelta(n) for n in range(1, (due.date() - start).days + 1)]
    assert sum(map(CAL.is_business_day, between)) == days


slas = st.builds(
    Duration,
    business_days=st.integers(min_value=0, max_value=10),
    seconds=st.integers(min_value=0, max_value=30 * HOUR),
).filter(bool)


@settings(deadline=None)
@given(arrival=moments, sla_=slas)
def test_promise_keeps_the_business_time_of_the_rule(arrival: datetime, sla_: Duration) -> None:
    rule = CAL.rule_due(arrival, sla_)
    due = CAL.first_response_due(arrival, sla_)
    # Never later than the rule, never before the arrival, and no business time is lost.
    assert arrival.astimezone(UTC) < due.astimezone(UTC) <= rule.astimezone(UTC)
    assert CAL.business_seconds_between(arrival, due) == CAL.business_seconds_between(
        arrival, rule
    )
    assert CAL.business_seconds_between(due, rule) == 0
    # A business moment: inside opening hours, or exactly at a closing time.
    local = due.astimezone(WAW)
    assert CAL.is_business_day(local.date())
    assert time(8) <= local.time() <= time(18)
    if CAL.is_open(rule) or rule.astimezone(WAW).time() == time(18):
        assert due == rule


@settings(deadline=None)
@given(
    day=business_dates,
    micros=st.integers(min_value=1, max_value=OPEN_MICROS),
    back=st.integers(min_value=0, max_value=40 * 86400 * 10**6),
)
def test_adding_the_seconds_between_lands_on_the_end(day: date, micros: int, back: int) -> None:
    end = _inside_hours(day, micros)  # inside (opens, closes]
    start = end - timedelta(microseconds=back)
    seconds = CAL.business_seconds_between(start, end)
    assume(seconds > 0)
    assert CAL.add_business_seconds(start, seconds) == end


@settings(deadline=None)
@given(
    day=business_dates,
    micros=st.integers(min_value=0, max_value=OPEN_MICROS - 1),
    seconds=st.integers(min_value=1, max_value=200 * HOUR),
)
def test_business_seconds_round_trip(day: date, micros: int, seconds: int) -> None:
    moment = _inside_hours(day, micros)  # inside [opens, closes)
    later = CAL.add_business_seconds(moment, seconds)
    assert CAL.business_seconds_between(moment, later) == seconds
    assert CAL.add_business_seconds(later, -seconds) == moment


@settings(deadline=None)
@given(day=business_dates, clock=st.times(), days=st.integers(min_value=0, max_value=15))
def test_business_days_round_trip(day: date, clock: time, days: int) -> None:
    moment = datetime.combine(day, clock, WAW)
    due = CAL.add_business_days(moment, days)
    assert CAL.subtract(due, Duration(business_days=days)) == moment


@settings(deadline=None)
@given(a=moments, b=moments, c=moments)
def test_business_seconds_are_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c), key=lambda m: m.astimezone(UTC))  # UTC: fold-safe ordering
    whole = CAL.business_seconds_between(a, c)
    parts = CAL.business_seconds_between(a, b) + CAL.business_seconds_between(b, c)
    assert whole == pytest.approx(parts, abs=1e-6)
