"""Why a service refuses a request, in the caller's terms; the API maps each kind to one HTTP status.

Services raise these instead of HTTP errors so the same rule holds for the CLI and for tests,
and so one handler (api/app.py) decides how a refusal looks on the wire.
"""

from __future__ import annotations


class DomainError(Exception):
    """A refusal with a message meant for the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """The thing asked for does not exist."""


class Conflict(DomainError):
    """The change would break a rule over data already stored (e.g. a fence a plan still names)."""


class Unavailable(DomainError):
    """Something the service needs (the broker) is not answering: the caller should retry."""


class Invalid(DomainError):
    """A value given is unusable; `loc` names it inside the request (e.g. ("fixes", 3, "ts"))."""

    def __init__(self, message: str, *loc: str | int) -> None:
        super().__init__(message)
        self.loc = loc
