"""Telling "the database is unavailable" apart from every other database error.

Losing the server (refused or dropped connections, a restart, a statement cancelled by the
configured timeout, a deadlock) is transient: the request can be retried and the server recovers by
itself, so the gateway answers 503 with ``Retry-After``. Everything else (a constraint, a bad query)
is the module's business or a bug, and stays what it was.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from pony.orm.core import (
    CommitException,
    ConnectionClosedError,
    RollbackException,
    TransactionIntegrityError,
)
from pony.orm.dbapiprovider import IntegrityError

from hyperspot.platform.db.urls import DatabaseError

# The drivers' exception classes (DB-API names) that mean the server could not do the work: a
# connection that failed or broke (OperationalError; InterfaceError for one already closed), a
# statement timeout, a deadlock. SQLite is absent on purpose: an embedded file does not go away.
_DRIVER_ERRORS = {
    "psycopg2": ("OperationalError", "InterfaceError"),
    "pymysql": ("OperationalError", "InterfaceError"),
}


class DatabaseUnavailableError(DatabaseError):
    """The database did not do the work for a transient reason; retrying later may succeed."""


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or one it wraps) says the database server is unavailable."""
    classes = _driver_classes()
    for each in _chain(error):
        if isinstance(each, DatabaseUnavailableError | ConnectionClosedError):
            return True
        if classes and isinstance(each, classes):
            return True
    return False


def _driver_classes() -> tuple[type[BaseException], ...]:
    # Only drivers already imported can have raised anything: none is imported here.
    found: list[type[BaseException]] = []
    for module_name, names in _DRIVER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in names)
    return tuple(found)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: Pony's ``original_exc`` and commit lists, causes, contexts."""
    pending, seen = [error], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        original = getattr(current, "original_exc", None)
        if isinstance(original, BaseException):
            pending.append(original)
        if isinstance(current, CommitException | RollbackException):
            pending.extend(info[1] for info in current.exceptions if info[1] is not None)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)


# What a transaction meets because another ran at the same time, where retrying the whole unit
# of work is the remedy: MySQL/MariaDB deadlock (1213) and lock wait timeout (1205), PostgreSQL
# serialization failure (40001) and deadlock (40P01), SQLite's lock held past its busy timeout.
_MYSQL_CONTENTION = frozenset({1205, 1213})
_POSTGRES_CONTENTION = frozenset({"40001", "40P01"})


def is_contention(error: BaseException) -> bool:
    """Whether ``error`` (or one it wraps) is a conflict with a concurrent transaction."""
    for each in _chain(error):
        module = type(each).__module__
        # psycopg2 raises these classes (errors.SerializationFailure, DeadlockDetected) with
        # the SQLSTATE in pgcode.
        if module.startswith("psycopg2") and (
            getattr(each, "pgcode", None) in _POSTGRES_CONTENTION
            or type(each).__name__ in ("SerializationFailure", "DeadlockDetected")
        ):
            return True
        first = each.args[0] if each.args else None
        if module.startswith("pymysql") and first in _MYSQL_CONTENTION:
            return True
        if module == "sqlite3" and isinstance(first, str) and "database is locked" in first:
            return True
    return False


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a collision with a concurrent transaction that a new attempt of the
    whole unit resolves: contention (``is_contention``), or a key another transaction inserted
    first (two units creating the same missing row; the next attempt finds it)."""
    return isinstance(error, TransactionIntegrityError | IntegrityError) or is_contention(error)
