"""Five-field cron schedules as standard crontab reads them, on APScheduler 3.x's CronTrigger.

APScheduler 3.x numbers weekdays from Monday (0 = Monday) even in ``from_crontab``, where crontab numbers
them from Sunday (0 and 7 = Sunday): "0 8 * * 1" would fire on Tuesdays. The day-of-week field is
therefore expanded here to the weekday names, which both agree on. A schedule restricting both the day
of the month and the day of the week is refused: crontab fires when either matches, APScheduler only
when both do.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    token = token.lower()
    if token in _NAMES:
        return _NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    raise ValueError(f"day of week {token!r} is not 0-7 or sun-sat")


def weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler weekday names ("*" stays as it is)."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"day of week step {step_text!r} is not a positive number")
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            start, end = base.split("-", 1)
            first, last = _day(start), _day(end)
            if end.lower() in ("7", "sun") and first > 0:
                last = 7  # 5-7, fri-sun: Friday to Sunday
        else:
            first = _day(base)
            last = 6 if step else first
        if first > last:
            raise ValueError(f"day of week range {base!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step or 1))
    return ",".join(_NAMES[day] for day in sorted(days))


def cron_trigger(schedule: str, zone: tzinfo) -> CronTrigger:
    """The trigger of a five-field crontab ``schedule`` in ``zone``; ValueError says what is wrong."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"expected five fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise ValueError("restrict the day of the month or the day of the week, not both (crontab fires on "
                         "either, which this scheduler cannot express)")
    values = {"minute": minute, "hour": hour, "day": day, "month": month}
    for name, value in values.items():  # each on its own first: the error names the field
        try:
            CronTrigger(**{name: value}, timezone=zone)
        except ValueError as exc:
            raise ValueError(f"{name} field {value!r}: {exc}") from None
    return CronTrigger(**values, day_of_week=weekdays(weekday), timezone=zone)
