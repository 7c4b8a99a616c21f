"""When the weekly refresh runs: a cron expression read in the site's time zone, and the loop that waits for it.

MODERATION_REFRESH_CRON (default Monday 03:00) and MODERATION_TIMEZONE (default Africa/Abidjan)
are read once at start, and a bad one is refused at once rather than at 03:00. cronsim reads
the expression: five fields as cron has them, daylight-saving changes handled as cron does.
A run missed while the machine slept is not made up: the next one is the next due after now.
"""

import os
import threading
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

DEFAULT_CRON = "0 3 * * 1"
DEFAULT_TIMEZONE = "Africa/Abidjan"


class ScheduleError(ValueError):
    """A cron expression or time zone that cannot be used, with the reason."""


def from_environment() -> tuple[str, ZoneInfo]:
    """The schedule the environment asks for, checked."""
    expression = os.environ.get("MODERATION_REFRESH_CRON", DEFAULT_CRON).strip()
    name = os.environ.get("MODERATION_TIMEZONE", DEFAULT_TIMEZONE).strip()
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"MODERATION_TIMEZONE={name!r} is not a time zone name such as Africa/Abidjan or Europe/Paris") from None
    next_run(expression, zone, datetime.now(zone))
    return expression, zone


def next_run(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first moment after `after` that the expression names, in the zone."""
    try:
        return next(CronSim(expression, after.astimezone(zone)))
    except (CronSimError, StopIteration) as error:
        raise ScheduleError(f"MODERATION_REFRESH_CRON={expression!r} is not a cron expression of five fields "
                            f"(minute hour day month weekday), e.g. {DEFAULT_CRON!r}: {error or 'it never comes'}") from None


def run_forever(job: Callable[[], None], expression: str, zone: ZoneInfo, stop: threading.Event,
                echo: Callable[[str], None]) -> None:
    """Run `job` at every moment the expression names until `stop` is set; a failing run is reported and the next one waits."""
    while not stop.is_set():
        due = next_run(expression, zone, datetime.now(zone))
        echo(f"next refresh: {due:%Y-%m-%d %H:%M %Z} ({expression!r} in {zone.key})")
        if stop.wait(max(0.0, (due - datetime.now(zone)).total_seconds())):
            return
        try:
            job()
        except Exception as error:  # the scheduler outlives one failed refresh; the next one may succeed
            echo(f"refresh failed: {type(error).__name__}: {error}")
