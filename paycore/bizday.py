"""Business days: which day an instant belongs to, in the platform's time zone.

The providers' statements, the banks' settlement and the merchants' finance
teams all count days in China time (Asia/Shanghai, UTC+8, no daylight
saving): a payment at 23:30 UTC on 31 January belongs to 1 February. Every
part of paycore that groups money by day (reconciliation, settlement totals,
statements, fee rules' effective dates) asks this module, configured once by
``[settlement] timezone``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Calendar:
    """Business days in one time zone; ``cutoff`` is how long after a day's end it may be closed."""
    tz: ZoneInfo
    cutoff: timedelta = timedelta(0)

    @classmethod
    def of(cls, tz_name: str = DEFAULT_TIMEZONE, cutoff: timedelta = timedelta(0)) -> "Calendar":
        return cls(ZoneInfo(tz_name), cutoff)

    def day_of(self, at: datetime) -> date:
        """The business day of an instant (an aware datetime)."""
        if at.tzinfo is None:
            raise ValueError("a naive datetime has no business day")
        return at.astimezone(self.tz).date()

    def start(self, day: date) -> datetime:
        """The first instant of ``day``, in UTC."""
        return datetime.combine(day, time(0), tzinfo=self.tz).astimezone(timezone.utc)

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of ``day`` in UTC, for ``where at >= start and at < end``."""
        return self.start(day), self.start(day + timedelta(days=1))

    def closes_at(self, day: date) -> datetime:
        """When ``day`` may be closed: its end plus the cut-off (late events have arrived by then)."""
        return self.bounds(day)[1] + self.cutoff

    def today(self, now: datetime | None = None) -> date:
        return self.day_of(now or datetime.now(timezone.utc))


def parse_cutoff(text: str) -> timedelta:
    """``"HH:MM"`` after midnight of the next day → a timedelta (``"02:00"`` → 2 h)."""
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"cutoff must be HH:MM, not {text!r}") from None
    if not (0 <= h <= 47 and 0 <= m < 60):
        raise ValueError(f"cutoff must be HH:MM between 00:00 and 47:59, not {text!r}")
    return timedelta(hours=h, minutes=m)
