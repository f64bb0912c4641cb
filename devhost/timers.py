"""Timer triggers: NCRONTAB / TimeSpan schedules and the per-function timer loop.

NCRONTAB has six fields, seconds first (``{second} {minute} {hour} {day} {month} {day-of-week}``); five
fields (no seconds) are accepted too. Like NCrontab, a time must match BOTH the day-of-month and the
day-of-week fields. Times are the machine's local time (the host's default without WEBSITE_TIME_ZONE).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock

from azure.functions import meta
from azure.functions.timer import TimerRequestConverter

from devhost.invoker import Invoker
from devhost.loader import IndexedFunction
from devhost.settings import ConfigError, parse_timespan

log = logging.getLogger("devhost")

_NAMES = {
    4: {
        m: i + 1
        for i, m in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
        )
    },
    5: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]  # seconds .. day-of-week (Sunday = 0)


def _parse_field(text: str, index: int) -> list[int]:
    low, high = _RANGES[index]
    names = _NAMES.get(index, {})

    def number(token: str) -> int:
        key = token.lower()
        value = names[key] if key in names else int(token)
        if not low <= value <= high:
            raise ValueError(token)
        return value

    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(part)
        if span == "*":
            start, end = low, high
        elif "-" in span:
            first, last = span.split("-", 1)
            start, end = number(first), number(last)
        else:
            start = number(span)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return sorted(values)


@dataclass(frozen=True)
class CronSchedule:
    seconds: list[int]
    minutes: list[int]
    hours: list[int]
    days: list[int]
    months: list[int]
    weekdays: list[int]

    def _day_matches(self, day: date) -> bool:
        return day.month in self.months and day.day in self.days and (day.weekday() + 1) % 7 in self.weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (naive local time)."""
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        day = start.date()
        for _ in range(366 * 8):  # a schedule like "0 0 0 29 2 1" needs years to come round
            if self._day_matches(day):
                floor = (start.hour, start.minute, start.second) if day == start.date() else (0, 0, 0)
                for hour in self.hours:
                    for minute in self.minutes:
                        for second in self.seconds:
                            if (hour, minute, second) >= floor:
                                return datetime.combine(day, clock(hour, minute, second))
            day += timedelta(days=1)
        raise ValueError("the schedule never occurs")


@dataclass(frozen=True)
class IntervalSchedule:
    """The TimeSpan form (``"00:05:00"``): every interval, counted from the previous occurrence."""

    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    error = ConfigError(
        f"The schedule expression '{expression}' was not recognized as a valid cron expression or timespan string."
    )
    fields = expression.split()
    if len(fields) == 1 and ":" in expression:
        try:
            seconds = parse_timespan(expression)
        except ConfigError:
            raise error from None
        if seconds <= 0:
            raise error
        return IntervalSchedule(timedelta(seconds=seconds))
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise error
    try:
        schedule = CronSchedule(*(_parse_field(text, index) for index, text in enumerate(fields)))
        schedule.next_after(datetime(2000, 1, 1))
    except ValueError:
        raise error from None
    return schedule


def timer_request(schedule_status: dict | None, past_due: bool):
    """The TimerInfo JSON the host sends, decoded with the worker's converter."""
    info = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": schedule_status, "IsPastDue": past_due}
    return TimerRequestConverter.decode(meta.Datum(json.dumps(info), "json"), trigger_metadata={})


def _iso(moment: datetime | None) -> str:
    return (moment or datetime(1, 1, 1)).isoformat()


class TimerRunner:
    """Runs one timer function on schedule: never two runs of it at once, late runs flagged past_due."""

    LATE_TOLERANCE = 1.0  # seconds after the scheduled time before a run counts as past due

    def __init__(
        self, fn: IndexedFunction, schedule: CronSchedule | IntervalSchedule, invoker: Invoker
    ) -> None:
        self.fn, self.schedule, self.invoker = fn, schedule, invoker
        self.last: datetime | None = None

    async def run(self) -> None:
        if self.fn.trigger.get("runOnStartup"):
            await self._fire(
                past_due=False, next_due=self.schedule.next_after(datetime.now()), reason="run on startup"
            )
        due = self.schedule.next_after(datetime.now())
        while True:
            await asyncio.sleep(max(0.0, (due - datetime.now()).total_seconds()))
            following = self.schedule.next_after(due)
            late = (datetime.now() - due).total_seconds() > self.LATE_TOLERANCE
            await self._fire(past_due=late, next_due=following, reason="Timer fired")
            if following <= datetime.now():
                # The run overran one or more occurrences: run once more at once (past due), then resync.
                await self._fire(
                    past_due=True, next_due=self.schedule.next_after(datetime.now()), reason="Timer fired"
                )
                following = self.schedule.next_after(datetime.now())
            due = following

    async def _fire(self, past_due: bool, next_due: datetime, reason: str) -> None:
        now = datetime.now()
        status = {"Last": _iso(self.last), "Next": _iso(next_due), "LastUpdated": _iso(now)}
        self.last = now
        await invoke_with_retries(
            self.invoker, self.fn, timer_request(status, past_due), f"{reason} at {now.isoformat()}"
        )


async def invoke_with_retries(invoker: Invoker, fn: IndexedFunction, value, reason: str) -> bool:
    """A timer invocation honours the function's ``@app.retry`` policy (fixed delay or exponential)."""
    policy = fn.retry_policy or {}
    retries = int(policy.get("max_retry_count", 0))  # -1 = retry forever
    attempt = 0
    while True:
        result = await invoker.invoke(fn, value, reason, retry_count=attempt)
        if result.succeeded:
            return True
        if retries != -1 and attempt >= retries:
            return False
        await asyncio.sleep(_retry_delay(policy, attempt))
        attempt += 1


def _retry_delay(policy: dict, attempt: int) -> float:
    if policy.get("strategy") == "exponential_backoff":
        low = parse_timespan(policy["minimum_interval"])
        high = parse_timespan(policy["maximum_interval"])
        return min(high, low * 2**attempt)
    return parse_timespan(policy.get("delay_interval", "00:00:00"))
