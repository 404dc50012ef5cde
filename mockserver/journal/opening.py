"""One way to open a journal from what a user typed: `--db PATH|URL`.

`serve`, `export`, `import` and `check` all take a SQLite file path or a PostgreSQL URL
(`postgresql://...`) in the same flag; this is the one function that tells them apart,
so a new store is one more branch here, not one more in each command.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import JournalError
from .base import Journal
from .pg_url import is_postgres_url, shown_url

__all__ = ["is_postgres_url", "open_journal", "shown_url"]


def open_journal(
    where: str | Path,
    *,
    max_requests: int | None = None,
    existing: bool = False,
    shared: bool = False,
) -> Journal:
    """The journal at `where`: a PostgreSQL URL, else a SQLite file (created if missing).

    `existing` refuses a SQLite file that is not there (`JournalError`, cause `missing`)
    instead of creating an empty one: a reader asking for a journal wants that journal.
    `shared` opens a SQLite file that a running `serve` may hold (a reader beside it);
    a PostgreSQL journal is always shared.
    """
    text = str(where)
    if is_postgres_url(text):
        try:
            from .postgres import PostgresJournal
        except ImportError as exc:
            raise JournalError(
                f"cannot open the PostgreSQL journal: {exc}",
                cause="open",
                fix="install the driver with pip install 'logx-mock[postgres]'",
            ) from exc
        return PostgresJournal(text, max_requests=max_requests)
    path = Path(where)
    if existing and not path.is_file():
        raise JournalError(
            f"there is no journal at {text!r}",
            cause="missing",
            fix="give the file `logx-mock serve --db` writes (default ./logx-mock.db)",
        )
    from .sqlite import SqliteJournal

    return SqliteJournal(path, max_requests=max_requests, shared=shared)
