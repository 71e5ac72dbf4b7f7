"""Five-field cron expressions (minute hour day-of-month month day-of-week) in a time zone (pure).

Supports `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month and weekday
names (jan, mon), and `7` for Sunday. Day of month and day of week combine as in cron: when
both are restricted, either matching is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_NAMES = {
    **{
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    **{d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 7))  # fmt: skip
SEARCH_LIMIT = timedelta(days=366 * 5)


class CronError(ValueError):
    """An expression or time zone that cannot be used; the message says which part."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool
    zone: ZoneInfo

    def matches(self, local: datetime) -> bool:
        if local.minute not in self.minutes or local.hour not in self.hours:
            return False
        if local.month not in self.months:
            return False
        day = local.day in self.days
        weekday = (local.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday


def _value(text: str, low: int, high: int, what: str) -> int:
    number = _NAMES.get(text.lower()) if not text.isdigit() else int(text)
    if number is None or not low <= number <= high:
        raise CronError(f"{what}: {text!r} is not in {low}-{high}")
    return number


def _field(text: str, low: int, high: int, what: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise CronError(f"{what}: step {step_text!r} must be a positive number")
        if spec == "*":
            start, end = low, high
        elif "-" in spec:
            first, last = spec.split("-", 1)
            start, end = _value(first, low, high, what), _value(last, low, high, what)
            if start > end:
                raise CronError(f"{what}: range {spec!r} runs backwards")
        else:
            start = _value(spec, low, high, what)
            end = high if step else start
        values.update(range(start, end + 1, step or 1))
    return frozenset(values)


def parse(expression: str, time_zone: str | None = None) -> Schedule:
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(f"{expression!r} needs 5 fields (minute hour day month weekday)")
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {time_zone!r}; use an IANA name such as Europe/Berlin"
        ) from None
    parsed = [
        _field(text, low, high, what)
        for text, (what, low, high) in zip(fields, _FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in parsed[4])
    return Schedule(parsed[0], parsed[1], parsed[2], parsed[3], weekdays,
                    any_day=fields[2] == "*", any_weekday=fields[4] == "*", zone=zone)  # fmt: skip


def next_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first scheduled instant strictly after `after` (aware), or None within 5 years."""
    local = after.astimezone(schedule.zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = local + SEARCH_LIMIT
    while local < end:
        if local.month not in schedule.months:
            month = local.month % 12 + 1
            year = local.year + (1 if month == 1 else 0)
            local = local.replace(year=year, month=month, day=1, hour=0, minute=0)
            continue
        day_ok = schedule.matches(
            local.replace(hour=min(schedule.hours), minute=min(schedule.minutes))
        )
        if not day_ok:
            local = (local + timedelta(days=1)).replace(hour=0, minute=0)
            continue
        if local.hour not in schedule.hours:
            local = (local + timedelta(hours=1)).replace(minute=0)
            continue
        if local.minute not in schedule.minutes:
            local += timedelta(minutes=1)
            continue
        # Wall-clock times that do not exist (a DST gap) are skipped by the round trip.
        instant = local.astimezone(UTC).astimezone(schedule.zone)
        if instant.replace(tzinfo=None) == local.replace(tzinfo=None):
            return instant
        local += timedelta(minutes=1)
    return None
