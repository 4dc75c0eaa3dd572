"""Cron expressions: the five-field schedule of ``Periodic(cron=...)``, in a time zone.

``Cron("30 6 * * mon-fri", zone=ZoneInfo("Europe/Paris"))`` matches 06:30 on weekdays, Paris time.
Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or ``jan``-``dec``), day of
week (0-7, 0 and 7 are Sunday, or ``sun``-``sat``). Each field is ``*``, a value, a range ``a-b``, a
step ``*/n`` or ``a-b/n`` or ``a/n``, or a comma-separated list of these. When both the day of month
and the day of week are restricted (neither is ``*``), a day matches if either does, as in
classic cron. ``@yearly``, ``@monthly``, ``@weekly``, ``@daily`` and ``@hourly`` are accepted.

Times are matched on the zone's wall clock. Across daylight-saving changes: a wall time that does
not exist (the hour skipped in spring) matches nothing, so its run is skipped; a wall time that
happens twice (the hour repeated in autumn) matches once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from queuert.errors import UsageError

__all__ = ["Cron"]

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SEARCH_DAYS = 366 * 8
"""How far a search looks for a matching day: beyond any gap a valid expression can have (the
29th of February on a given weekday recurs within 28 years only with both fields restricted, which
classic cron ORs, so every valid expression matches within a few years)."""


def _value(text: str, low: int, names: list[str] | None, offset: int) -> int:
    word = text.lower()
    if names is not None and word in names:
        return names.index(word) + offset
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def _field(
    text: str, low: int, high: int, names: list[str] | None = None, offset: int = 0
) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"bad step {step_text!r}")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start = _value(first, low, names, offset)
            end = _value(last, low, names, offset)
        else:
            start = _value(body, low, names, offset)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


@dataclass(frozen=True, init=False)
class Cron:
    """A parsed cron expression evaluated in ``zone`` (default UTC)."""

    expression: str
    zone: tzinfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Monday ... 6 = Sunday (``date.weekday()``)."""
    any_day: bool
    any_weekday: bool

    def __init__(self, expression: str, *, zone: tzinfo = timezone.utc) -> None:
        if not isinstance(expression, str):
            raise UsageError(f"a cron expression is a string, not {expression!r}")
        if not isinstance(zone, tzinfo):
            raise UsageError(
                f"a cron zone is a tzinfo (e.g. ZoneInfo('Europe/Paris')), not {zone!r}"
            )
        text = _MACROS.get(expression.strip().lower(), expression)
        fields = text.split()
        if len(fields) != 5:
            raise UsageError(
                f"a cron expression has five fields (minute hour day month weekday), not {expression!r}"
            )
        try:
            minutes = _field(fields[0], 0, 59)
            hours = _field(fields[1], 0, 23)
            days = _field(fields[2], 1, 31)
            months = _field(fields[3], 1, 12, _MONTHS, 1)
            weekdays = _field(fields[4], 0, 7, _DAYS, 0)
        except ValueError as exc:
            raise UsageError(f"bad cron expression {expression!r}: {exc}") from None
        object.__setattr__(self, "expression", expression)
        object.__setattr__(self, "zone", zone)
        object.__setattr__(self, "minutes", tuple(sorted(minutes)))
        object.__setattr__(self, "hours", tuple(sorted(hours)))
        object.__setattr__(self, "days", frozenset(days))
        object.__setattr__(self, "months", frozenset(months))
        # cron counts from Sunday = 0 (and 7); date.weekday() from Monday = 0
        object.__setattr__(self, "weekdays", frozenset((d - 1) % 7 for d in weekdays))
        object.__setattr__(self, "any_day", fields[2] == "*")
        object.__setattr__(self, "any_weekday", fields[4] == "*")
        if self.next_after(datetime(2000, 1, 1, tzinfo=timezone.utc)) is None:
            raise UsageError(f"the cron expression {expression!r} never matches")

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = day.weekday() in self.weekdays
        if self.any_day:
            return by_weekday
        if self.any_weekday:
            return by_day
        return by_day or by_weekday

    def _aware(self, wall: datetime) -> datetime | None:
        """The instant of the zone's wall time ``wall`` (its first one when it happens twice), or
        ``None`` when the zone skips it."""
        first = wall.replace(tzinfo=self.zone, fold=0)
        back = first.astimezone(timezone.utc).astimezone(self.zone).replace(tzinfo=None)
        return first if back == wall else None

    def previous_at_or_before(self, moment: datetime) -> datetime | None:
        """The latest matching time not after ``moment`` (aware), in the zone."""
        # a wall time up to an hour ahead of ``moment``'s can still be earlier (the repeated hour)
        start = moment.astimezone(self.zone).replace(tzinfo=None, fold=0) + timedelta(hours=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in reversed(self.hours):
                    for minute in reversed(self.minutes):
                        wall = datetime.combine(day, time(hour, minute))
                        if wall > start:
                            continue
                        aware = self._aware(wall)
                        if aware is not None and aware <= moment:
                            return aware
            day -= timedelta(days=1)
        return None

    def next_after(self, moment: datetime) -> datetime | None:
        """The earliest matching time after ``moment`` (aware), in the zone."""
        start = moment.astimezone(self.zone).replace(tzinfo=None, fold=0) - timedelta(hours=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self.hours:
                    for minute in self.minutes:
                        wall = datetime.combine(day, time(hour, minute))
                        if wall < start:
                            continue
                        aware = self._aware(wall)
                        if aware is not None and aware > moment:
                            return aware
            day += timedelta(days=1)
        return None
