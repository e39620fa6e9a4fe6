"""The runner's exceptions, and the one place that maps PostgreSQL SQLSTATEs onto them.

Every SQLSTATE the package's SQL raises on purpose is listed in ``SQLSTATES`` below, so an
application (in any language) can read here what each code means.
"""

from __future__ import annotations

import psycopg


class ConvkeyError(Exception):
    """Base class of everything convkey raises."""

    sqlstate: str | None = None

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None):
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.hint = hint


class ConfigurationError(ConvkeyError):
    """The runner cannot find or start a database (no DSN, no PostgreSQL binaries, ...)."""


class InvalidIdentifier(ConvkeyError, ValueError):
    """Bad input: an identifier, phone number or parameter that convkey refuses (SQLSTATE 22xxx)."""

    sqlstate = "22023"


class ValueTooLong(InvalidIdentifier):
    """An identifier, message id or body over its size limit (SQLSTATE 22001)."""

    sqlstate = "22001"


class NotFound(ConvkeyError, LookupError):
    """A conversation or merge id that does not exist for that business (SQLSTATE P0002)."""

    sqlstate = "P0002"


class InvalidState(ConvkeyError):
    """The operation does not fit the current state, e.g. an ambiguous unmerge (SQLSTATE 55000)."""

    sqlstate = "55000"


class RetryCall(ConvkeyError):
    """Concurrent changes kept moving what the call reads; nothing was written: retry it (SQLSTATE 40001)."""

    sqlstate = "40001"


class Corrupted(ConvkeyError):
    """The data breaks an invariant the API keeps, e.g. a cycle of merged_into_id (SQLSTATE XX001)."""

    sqlstate = "XX001"


class Conflict(ConvkeyError):
    """A unique rule was violated (SQLSTATE 23505)."""

    sqlstate = "23505"


# Every SQLSTATE convkey's SQL raises deliberately, with its meaning.
SQLSTATES: dict[str, tuple[type[ConvkeyError], str]] = {
    "22023": (InvalidIdentifier, "invalid_parameter_value: a parameter is missing, malformed or not allowed"),
    "22004": (InvalidIdentifier, "null_value_not_allowed: a required parameter is NULL"),
    "22001": (ValueTooLong, "string_data_right_truncation: identifier > 256 chars or body > 64 KB"),
    "P0002": (NotFound, "no_data_found: the conversation or merge does not exist in that business"),
    "55000": (InvalidState, "object_not_in_prerequisite_state: e.g. undo newer merges first"),
    "23505": (Conflict, "unique_violation"),
    "40001": (RetryCall, "serialization_failure: the owners of the call's identities did not settle; retry"),
    "XX001": (Corrupted, "data_corrupted: merged_into_id forms a cycle (edited by hand); see the hint"),
}


def from_psycopg(exc: psycopg.Error) -> ConvkeyError | psycopg.Error:
    """Map a psycopg error to the runner's class for its SQLSTATE (22xxx -> InvalidIdentifier).

    Errors convkey does not raise on purpose (connection loss, ...) are returned unchanged.
    """
    state = getattr(exc, "sqlstate", None)
    if state is None:
        return exc
    cls = SQLSTATES.get(state, (None,))[0]
    if cls is None and state.startswith("22"):
        cls = InvalidIdentifier
    if cls is None:
        return exc
    diag = exc.diag
    return cls(diag.message_primary or str(exc), sqlstate=state, hint=diag.message_hint)
