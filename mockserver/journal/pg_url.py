"""What a PostgreSQL URL is, and how messages show one: no driver needed.

`opening.py` (which opens it) and `postgres.py` (which names it in errors) both use
these; here they depend on neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["is_postgres_url", "shown_url"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(text: str) -> bool:
    """Whether `--db` names a PostgreSQL database rather than a SQLite file."""
    return text.startswith(_POSTGRES_SCHEMES)


def shown_url(url: str) -> str:
    """The URL with its password hidden, for banners, logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
