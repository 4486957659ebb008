"""When a digest destination's digest is due: its cron schedule in its IANA time zone, and quiet hours.

A digest covers everything pending for the destination up to the end of its period: the latest scheduled
fire time at or before now. A service that was down over several fire times sends one digest for all of
them (catch-up, not a burst). A fire time inside quiet hours sends only the ``alert`` items; the others are
held and go out as one mini-digest when the quiet hours end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.notify.cron import cron_trigger
from monitor.notify.destinations import DestinationModel, QuietHours

# Windows searched backwards for the latest fire time, shortest first: a frequent schedule is found in the
# first one in a few steps, a yearly one in the last (the steps taken stay bounded either way).
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))


@dataclass(frozen=True)
class Period:
    end: datetime  # UTC
    kind: str  # scheduled | quiet
    alerts_only: bool  # a scheduled time inside quiet hours: the other items wait for the quiet hours' end


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(quiet: QuietHours | None, moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment`` falls in the window [start, end) of local time (a window may span midnight)."""
    if quiet is None:
        return False
    local = moment.astimezone(zone).time().replace(tzinfo=None)
    start, end = _clock(quiet.start), _clock(quiet.end)
    return start <= local < end if start < end else (local >= start or local < end)


def last_fire(schedule: str, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The latest time at or before ``now`` the cron ``schedule`` fires (None: not within a year)."""
    trigger = cron_trigger(schedule, zone)
    for window in _LOOKBACK:
        moment = trigger.get_next_fire_time(None, now - window)
        found = None
        while moment is not None and moment <= now:
            found = moment
            moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
        if found is not None:
            return found
    return None


def last_quiet_window(quiet: QuietHours, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """(start, end) of the latest quiet hours that ended at or before ``now``."""
    local = now.astimezone(zone)
    end = datetime.combine(local.date(), _clock(quiet.end), tzinfo=zone)
    if end > local:
        end = datetime.combine(local.date() - timedelta(days=1), _clock(quiet.end), tzinfo=zone)
    start = datetime.combine(end.date(), _clock(quiet.start), tzinfo=zone)
    if start >= end:
        start = datetime.combine(end.date() - timedelta(days=1), _clock(quiet.start), tzinfo=zone)
    return start, end


def due_period(destination: DestinationModel, now: datetime) -> Period | None:
    """The latest period of a digest destination that has ended by ``now``: its last fire time, or the end of
    its quiet hours if that came later and a fire time fell inside them."""
    if destination.mode != "digest" or not destination.schedule:
        return None
    zone = ZoneInfo(destination.timezone)
    candidates: list[Period] = []
    fire = last_fire(destination.schedule, zone, now)
    if fire is not None:
        quiet = in_quiet_hours(destination.quiet_hours, fire, zone)
        candidates.append(Period(fire.astimezone(UTC), "scheduled", quiet))
    if destination.quiet_hours is not None:
        # a release when the quiet hours end, if a digest was due during them (and so held back)
        start, end = last_quiet_window(destination.quiet_hours, zone, now)
        held = cron_trigger(destination.schedule, zone).get_next_fire_time(None, start)
        if held is not None and held < end:
            candidates.append(Period(end.astimezone(UTC), "quiet", False))
    if not candidates:
        return None
    # the later one wins; a fire time at the very end of the quiet hours is the scheduled digest itself
    return max(candidates, key=lambda p: (p.end, p.kind == "scheduled"))
