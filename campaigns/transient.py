"""Which database errors are worth another try, and how long to wait before it.

Named, not guessed (STYLE: retry only named transient errors): a deadlock, a
serialization failure, a lock or statement timeout, a server shutting down or a
lost connection pass by themselves when tried again; anything else (a value too
long, a broken constraint, a bug) would fail the same way every time.
"""

from __future__ import annotations

import random

from django.db import InterfaceError, OperationalError, connection

# PostgreSQL SQLSTATEs: serialization_failure, deadlock_detected, lock_not_available,
# query_canceled (statement_timeout), admin_shutdown, crash_shutdown, cannot_connect_now.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02",
                                 "57P03"})


def is_transient(exc: BaseException) -> bool:
    """True for a database error that the same work, tried again, would likely not meet."""
    if isinstance(exc, InterfaceError):  # "connection already closed"
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if state:
        return state in TRANSIENT_SQLSTATES or state.startswith("08")  # 08: connection
    if connection.vendor == "sqlite":
        return "locked" in str(exc)  # another writer holds the database
    return True  # the driver's own OperationalError without a state: the connection broke


def backoff(attempt: int, *, base: float = 0.05, cap: float = 2.0) -> float:
    """Seconds to wait before try ``attempt + 1``: doubling, with jitter, at most ``cap``."""
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


def connection_recover() -> None:
    """Drop the connection if it broke, so the next query opens a new one."""
    if connection.connection is not None and not connection.is_usable():
        connection.close()
