"""Datafiles as table rows, and back: how a shared journal keeps the uploaded datafiles.

A row is what it takes to give back the same `Datafile`: where it came from, the key
the CDN routes serve it under, when its file last changed, and its text exactly as
given. Reading them back parses each text once per process (the parse is cached by
its content), so following a change costs one parse of what changed.
"""

from __future__ import annotations

import dataclasses
import functools

from ..contract.datafile import MAX_DATAFILES, Datafile, Datafiles

__all__ = ["DatafileRow", "from_rows", "to_rows"]

DatafileRow = tuple[str, str, float | None, bytes]
"""(source, sdk_key, modified, text)"""


def to_rows(datafiles: Datafiles) -> list[DatafileRow]:
    return [(f.source, f.sdk_key, f.modified, f.text) for f in datafiles.files]


def from_rows(rows: list[DatafileRow]) -> Datafiles:
    return Datafiles(tuple(_parsed(bytes(text), *rest) for *rest, text in rows))


@functools.lru_cache(maxsize=2 * MAX_DATAFILES)
def _parsed(text: bytes, source: str, sdk_key: str, modified: float | None) -> Datafile:
    """One stored datafile, parsed once per process (the key holds the text the
    datafile holds anyway)."""
    datafile = Datafile.from_json(text, source=source)
    return dataclasses.replace(datafile, sdk_key=sdk_key, modified=modified)
