"""Throwaway databases for development and tests, on the local servers or in containers.

``provision`` creates a new database (and, on PostgreSQL, a new ordinary role that owns it: the
platform must not connect as a superuser, or row-level security would not apply) and returns the
URL the platform should use; ``ProvisionedDatabase.drop`` removes both again.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from psycopg2 import sql

from hyperspot.platform.db.urls import DatabaseError, DatabaseUrl, parse_database_url

Engine = Literal["sqlite", "postgres", "mariadb"]
ENGINES: tuple[Engine, ...] = ("sqlite", "postgres", "mariadb")

# Where the local servers are when no URL is given (the machines' PostgreSQL and MariaDB).
ADMIN_URL_VARIABLES: dict[Engine, str] = {
    "postgres": "HYPERSPOT_TEST_POSTGRES_URL",
    "mariadb": "HYPERSPOT_TEST_MARIADB_URL",
}
DEFAULT_ADMIN_URLS: dict[Engine, str] = {
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mariadb://root@127.0.0.1:3306/mysql",
}


def admin_url(engine: Engine) -> DatabaseUrl:
    """The admin URL for ``engine``: from its environment variable, else the local server."""
    return parse_database_url(
        os.environ.get(ADMIN_URL_VARIABLES[engine]) or DEFAULT_ADMIN_URLS[engine]
    )


# Identifiers cannot be bound parameters: MariaDB's are quoted by _mariadb_identifier.
CREATE_MARIADB = "CREATE DATABASE {} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
DROP_MARIADB = "DROP DATABASE IF EXISTS {}"


def _mariadb_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class ProvisionedDatabase:
    engine: Engine
    url: DatabaseUrl  # what the platform connects with
    admin: DatabaseUrl | None  # what created it (None for SQLite)
    role: str = ""  # PostgreSQL: the ordinary role that owns the database

    def drop(self) -> None:
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.url.database + suffix).unlink(missing_ok=True)
            return
        assert self.admin is not None
        connection = self.admin.connect(autocommit=True)
        try:
            cursor = connection.cursor()
            if self.engine == "postgres":
                # FORCE: Pony keeps pooled connections open in other threads and processes.
                database = sql.Identifier(self.url.database)
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
                cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(self.role)))
            else:
                cursor.execute(DROP_MARIADB.format(_mariadb_identifier(self.url.database)))
        finally:
            connection.close()


def provision(
    engine: Engine,
    *,
    name: str | None = None,
    folder: Path | None = None,
    admin: DatabaseUrl | None = None,
) -> ProvisionedDatabase:
    """Create a fresh, empty database on ``engine`` and return how to reach it."""
    name = name or f"hs_test_{secrets.token_hex(6)}"
    if engine == "sqlite":
        where = folder or Path(tempfile.mkdtemp(prefix="hyperspot-"))
        path = (where / f"{name}.db").resolve()
        return ProvisionedDatabase("sqlite", parse_database_url(f"sqlite:///{path}"), None)
    admin = admin or admin_url(engine)
    connection = admin.connect(autocommit=True)
    try:
        cursor = connection.cursor()
        if engine == "postgres":
            role = name
            password = secrets.token_hex(12)
            cursor.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(name), sql.Identifier(role)
                )
            )
            url = admin.with_database(name).with_user(role, password)
            return ProvisionedDatabase("postgres", url, admin, role=role)
        cursor.execute(CREATE_MARIADB.format(_mariadb_identifier(name)))
        return ProvisionedDatabase("mariadb", admin.with_database(name), admin)
    except DatabaseError:
        raise
    except Exception as error:
        raise DatabaseError(
            f"cannot create a {engine} database through {admin.masked}: {error}"
        ) from None
    finally:
        connection.close()
