"""Database URLs: parsing, masking, driver connections and server version checks.

Supported: ``sqlite:///relative/or//absolute/path.db``, ``postgresql://user:pw@host:port/db``
(also ``postgres://``), ``mariadb://`` and ``mysql://`` (same driver). Query options are not
accepted: pool sizes and timeouts live in the ``database`` config section.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from hyperspot.platform.config import mask_url
from hyperspot.platform.errors import HyperspotError

Backend = Literal["sqlite", "postgres", "mysql"]

_SCHEMES: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "mariadb": "mysql",
    "mysql": "mysql",
}
_DEFAULT_PORTS: dict[Backend, int] = {"sqlite": 0, "postgres": 5432, "mysql": 3306}

BACKEND_NAMES: dict[Backend, str] = {
    "sqlite": "SQLite",
    "postgres": "PostgreSQL",
    "mysql": "MariaDB",
}

# Oldest server versions the platform is tested against (the support matrix).
MINIMUM_VERSIONS: dict[Backend, tuple[int, ...]] = {
    "sqlite": (3, 35),
    "postgres": (12,),
    "mysql": (10, 5),  # MariaDB
}


class DatabaseError(HyperspotError):
    """The database is unreachable, too old, or its URL is unusable; the message masks passwords."""


@dataclass(frozen=True)
class DatabaseUrl:
    backend: Backend
    url: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""  # the database name, or the SQLite file path

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def where(self) -> str:
        """Short description for messages: the file, or host:port/database."""
        if self.backend == "sqlite":
            return self.database
        return f"{self.host}:{self.port}/{self.database}"

    def with_database(self, name: str) -> DatabaseUrl:
        """The same server and credentials, another database (used by the sandbox and tests)."""
        scheme = self.url.split("://", 1)[0]
        credentials = f"{self.user}:{self.password}@" if self.password else f"{self.user}@"
        if not self.user:
            credentials = ""
        return parse_database_url(f"{scheme}://{credentials}{self.host}:{self.port}/{name}")

    def with_user(self, user: str, password: str = "") -> DatabaseUrl:
        scheme = self.url.split("://", 1)[0]
        credentials = f"{user}:{password}@" if password else f"{user}@"
        return parse_database_url(
            f"{scheme}://{credentials}{self.host}:{self.port}/{self.database}"
        )

    def pony_bind_arguments(
        self, *, connect_timeout_s: float | None = None, statement_timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Pony's ``bind`` arguments; the timeouts bound every connection of the worker threads."""
        if self.backend == "sqlite":
            return {"provider": "sqlite", "filename": self.database, "create_db": True}
        if self.backend == "postgres":
            arguments: dict[str, Any] = {
                "provider": "postgres",
                "host": self.host,
                "port": self.port,
                "user": self.user,
                "database": self.database,
            }
        else:
            # utf8mb4: Pony's default 'utf8' is MySQL's 3-byte charset, which loses emoji.
            arguments = {
                "provider": "mysql",
                "host": self.host,
                "port": self.port,
                "user": self.user,
                "database": self.database,
                "charset": "utf8mb4",
            }
        if self.password:
            arguments["password"] = self.password
        arguments.update(self._timeout_arguments(connect_timeout_s, statement_timeout_s))
        return arguments

    def _timeout_arguments(
        self, connect_timeout_s: float | None, statement_timeout_s: float | None
    ) -> dict[str, Any]:
        """Driver arguments that keep a dead or stuck server from holding a thread for long."""
        arguments: dict[str, Any] = {}
        if self.backend == "postgres":
            if connect_timeout_s is not None:
                # libpq takes whole seconds (and treats 1 as 2).
                arguments["connect_timeout"] = max(math.ceil(connect_timeout_s), 1)
            if statement_timeout_s is not None:
                # A connection option, not a SET: it is the session's default, so Pony's
                # DISCARD ALL on release keeps it.
                milliseconds = max(round(statement_timeout_s * 1000), 1)
                arguments["options"] = f"-c statement_timeout={milliseconds}"
        elif self.backend == "mysql":
            if connect_timeout_s is not None:
                arguments["connect_timeout"] = connect_timeout_s
            if statement_timeout_s is not None:
                arguments["init_command"] = f"SET SESSION max_statement_time={statement_timeout_s}"
                # The server cancels a slow statement; the socket timeouts end the wait for a
                # server (or network) that no longer answers at all.
                arguments["read_timeout"] = arguments["write_timeout"] = statement_timeout_s + 5
        return arguments

    def connect(
        self,
        *,
        autocommit: bool = False,
        timeout_s: float = 10,
        statement_timeout_s: float | None = None,
    ) -> Any:
        """A plain DB-API connection (migrations, version checks, health, administration)."""
        try:
            if self.backend == "sqlite":
                Path(self.database).parent.mkdir(parents=True, exist_ok=True)
                return sqlite3.connect(
                    self.database, timeout=timeout_s, isolation_level=None, check_same_thread=False
                )
            options = self._timeout_arguments(timeout_s, statement_timeout_s)
            if self.backend == "postgres":
                import psycopg2

                connection = psycopg2.connect(
                    host=self.host,
                    port=self.port,
                    user=self.user,
                    password=self.password or None,
                    dbname=self.database,
                    **options,
                )
                connection.autocommit = autocommit
                return connection
            import pymysql

            return pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database or None,
                charset="utf8mb4",
                autocommit=autocommit,
                **options,
            )
        except Exception as error:
            raise DatabaseError(
                f"cannot connect to the database at {self.masked} ({self.where}): "
                f"{_first_line(error)}"
            ) from None

    def server_version(self, connection: Any) -> tuple[int, ...]:
        """The version of the server behind ``connection`` (one from ``connect``)."""
        if self.backend == "sqlite":
            return sqlite3.sqlite_version_info
        cursor = connection.cursor()
        if self.backend == "postgres":
            cursor.execute("SHOW server_version_num")
            number = int(cursor.fetchone()[0])  # e.g. 150020 for 15.20
            return (number // 10000, number % 10000)
        cursor.execute("SELECT VERSION()")
        text = str(cursor.fetchone()[0]).split("-", 1)[0]
        return tuple(int(part) for part in text.split(".")[:3])

    def check_version(self, connection: Any) -> tuple[int, ...]:
        """Read the server version and refuse one older than the supported minimum."""
        version = self.server_version(connection)
        minimum = MINIMUM_VERSIONS[self.backend]
        if version[: len(minimum)] < minimum:
            raise DatabaseError(
                f"{BACKEND_NAMES[self.backend]} at {self.masked} is version {_dotted(version)}; "
                f"HyperSpot needs {_dotted(minimum)} or newer"
            )
        return version


def parse_database_url(url: str) -> DatabaseUrl:
    parts = urlsplit(url)
    backend = _SCHEMES.get(parts.scheme.lower())
    if backend is None:
        known = ", ".join(f"{scheme}://" for scheme in _SCHEMES)
        raise DatabaseError(f"database URL {mask_url(url)!r} has an unknown scheme; use {known}")
    if parts.query or parts.fragment:
        raise DatabaseError(
            f"database URL {mask_url(url)!r}: options go in the database config section, "
            "not in the URL"
        )
    if backend == "sqlite":
        path = unquote(url.split("://", 1)[1])
        # sqlite:///relative.db -> "/relative.db" after the scheme; sqlite:////abs.db -> "//abs.db"
        path = path[1:] if path.startswith("/") else path
        if not path or path == ":memory:":
            raise DatabaseError(
                "an SQLite database URL needs a file path (sqlite:///path/to/file.db); "
                "in-memory databases are not shared between threads"
            )
        return DatabaseUrl("sqlite", url, database=str(Path(path).resolve()))
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database:
        raise DatabaseError(
            f"database URL {mask_url(url)!r} needs a host and a database name "
            f"({parts.scheme}://user:password@host:port/database)"
        )
    try:
        port = parts.port or _DEFAULT_PORTS[backend]
    except ValueError:
        raise DatabaseError(f"database URL {mask_url(url)!r} has an invalid port") from None
    return DatabaseUrl(
        backend,
        url,
        host=parts.hostname,
        port=port,
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        database=database,
    )


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
