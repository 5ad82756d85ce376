"""Typed errors of the scheduling rules, so callers can map them to 4xx answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a request or stored value breaks a scheduling rule."""


class CronError(DomainError, ValueError):
    """A cron expression is malformed or never fires."""


class TimezoneError(DomainError, ValueError):
    """A timezone name is not a known IANA zone."""


class ScheduleError(DomainError, ValueError):
    """A schedule state or argument is unusable (naive datetime, negative count...)."""


class RuleError(DomainError, ValueError):
    """A condition, assertion or response rule is malformed; the message names the field."""


class ConfigError(DomainError, ValueError):
    """An endpoint's configuration breaks a whole-row rule (`field`: its snake_case name)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
