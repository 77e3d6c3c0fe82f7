"""The requested action of an alert mail: which one (``config/routing.yaml``, ``actions``), for
whom (the unit's controller) and by when (a deadline in Swedish working days or a day of the
next month, counted from the day the alert was raised, at the latest from the end of the month
after its period; both are in the event, so a re-sent alert keeps its date).

Swedish public holidays that fall on a weekday are not working days; midsommarafton, julafton
and nyårsafton are not public holidays by law but are days off under the municipal agreements
(AB), so they are skipped too.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from core.swedish import date_sv
from services.notifier.routing import ActionSpec, DeadlineSpec, Recipient

SWEDISH_TIME = ZoneInfo("Europe/Stockholm")


def easter_sunday(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


@cache
def days_off(year: int) -> frozenset[date]:
    """Weekday holidays and eves of ``year`` (weekends are off anyway)."""
    easter = easter_sunday(year)
    # Midsommarafton: the Friday between 19 and 25 June.
    midsummer_eve = next(date(year, 6, d) for d in range(19, 26) if date(year, 6, d).weekday() == 4)
    return frozenset(
        {
            date(year, 1, 1),  # nyårsdagen
            date(year, 1, 6),  # trettondedag jul
            easter - timedelta(days=2),  # långfredagen
            easter + timedelta(days=1),  # annandag påsk
            date(year, 5, 1),  # första maj
            easter + timedelta(days=39),  # Kristi himmelsfärdsdag
            date(year, 6, 6),  # Sveriges nationaldag
            midsummer_eve,
            date(year, 12, 24),
            date(year, 12, 25),
            date(year, 12, 26),
            date(year, 12, 31),
        }
    )


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in days_off(day.year)


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
    day = start
    left = days
    while left > 0:
        day += timedelta(days=1)
        if is_working_day(day):
            left -= 1
    return day


def close_month_end(period: str) -> date:
    """The last day of the month after ``period`` (``2024-03`` → 30 April 2024): the month in
    which a period's close normally falls."""
    year, month = int(period[:4]), int(period[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, calendar.monthrange(year, month)[1])


def deadline(spec: DeadlineSpec, raised_at: datetime, period: str | None = None) -> date:
    """Counted from the day the alert was raised (Swedish time) or, when that is later than the
    end of the month after ``period`` (a replayed history, a late first load), from that day:
    a replay of March 2024 asks for a plan in May 2024, not two years after."""
    stamp = raised_at if raised_at.tzinfo is not None else raised_at.replace(tzinfo=UTC)
    start = stamp.astimezone(SWEDISH_TIME).date()
    if period is not None:
        start = min(start, close_month_end(period))
    if spec.working_days is not None:
        return add_working_days(start, spec.working_days)
    assert spec.day_of_next_month is not None
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return date(year, month, spec.day_of_next_month)


def action_text(
    spec: ActionSpec,
    unit_name: str,
    controller: Recipient | None,
    period: str,
    raised_at: datetime,
) -> str:
    """The action's text with its placeholders filled in (``{year}``: the period's year)."""
    due = date_sv(deadline(spec.deadline, raised_at, period)) if spec.deadline is not None else ""
    year = int(period[:4])
    who = f"controller {controller.name}" if controller is not None else "er controller"
    return spec.text.format(unit=unit_name, controller=who, deadline=due, year=year)
