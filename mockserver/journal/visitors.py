"""The SQLite journal's visitor look-ups: an index led by a bucket of request ids, walked
bucket by bucket, and the visitors with impressions held in memory.

An index led by the visitor id puts each event's entry where its visitor sorts: with an
application's traffic (a visitor per user, random ids) that is a page of its own per event,
written to the WAL by its commit and copied again by a checkpoint (a batch of ten with a fresh
visitor per event: ~40 page writes a request, 3,100-3,300 requests/s against ~5,200 without
the index). `events_visitor` is led by the request's bucket (`BUCKET`: 64 requests) instead,
so a commit's entries land in the current bucket's few pages, as the table's own do.

A visitor's events are then found bucket by bucket: `CHUNK` buckets a query (an `IN` list,
one index seek per bucket), in arrival order or, for the newest, backwards, until the limit
is met; ~1,600 buckets at the default cap of 100,000 requests, a few ms for a visitor whose
events are spread over all of them.

The writer's early-conversion check (`impression_before`: did this visitor have an accepted
impression at or before this time?) would walk every bucket for a visitor with none (the
usual case for offline conversions) or whose impressions all came later (the case the warning
is for), and back to the first for a visitor decided once and converting ever since (~1.2 ms
at the cap). `ImpressionVisitors` answers from memory first, in two steps:
- per chunk of `CHUNK` buckets (4,096 requests), a bitmap of the hashes of the visitors with
  an accepted impression there (a Bloom filter with one hash, `FILTER_BITS`), set for every
  one written or read and let go once all the chunk's requests are evicted (after the
  commit: a rollback brings them back). The chunks whose bit is set may hold one (or the bit
  is another visitor's, or the impression was cleared since); no such chunk means the file
  holds none (exact);
- the request and timestamp of the last impression of each of the visitors that had one
  last (the last `RECENT` / 2 at least, `RECENT` at most): the journal looks for it in that
  request (one seek on the table's key, exact: an impression evicted, cleared or rolled
  back since is not found there).
Only then are the chunks whose bit is set read, newest first, one query each.

A commit's impressions are added together (`add`): the writer pays ~0.3 µs a visitor, not
~0.9 for one at a time with an ordered dict (the bits set in one loop, the recent updated by
`dict.update`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import groupby, islice
from typing import Any

__all__ = [
    "BUCKET",
    "BUCKET_BITS",
    "CHUNK",
    "CHUNK_SHIFT",
    "FILTER_BITS",
    "RECENT",
    "VISITOR_INDEX",
    "ImpressionVisitors",
    "bucket_chunks",
    "chunk_buckets",
    "walk_visitor",
]

BUCKET_BITS = 6
"""A bucket is the requests whose ids agree but for the low `BUCKET_BITS` bits (64)."""
BUCKET = f"(request_id >> {BUCKET_BITS})"
"""The index's leading expression; a query says it the same way for SQLite to use it."""
VISITOR_INDEX = f"CREATE INDEX events_visitor ON events ({BUCKET}, visitor_id);"
CHUNK = 64
"""Buckets a query looks in (an `IN` list of 64: 4,096 requests' worth)."""
CHUNK_SHIFT = BUCKET_BITS + CHUNK.bit_length() - 1
"""A chunk is `CHUNK` buckets (4,096 requests): the ids agreeing but for these low bits."""
FILTER_BITS = 18
"""Each chunk's bitmap: 2**18 bits, 32 KiB (25 at the default cap of 100,000 requests)."""
RECENT = 65_536
"""Visitors whose last impression is held, at most (~10 MB); half of them at least."""

Read = Callable[[str, tuple[Any, ...]], list[Any]]
"""Runs a query with its parameters and returns its rows."""


def bucket_chunks(low_id: int, high_id: int, *, newest_first: bool) -> Iterator[list[int]]:
    """The buckets of the ids from `low_id` to `high_id`, `CHUNK` at a time, oldest first;
    or newest first, in chunks of 1, 2, 4... up to `CHUNK` (what is looked for newest first,
    a visitor's last events or last impression, is mostly in the last buckets: an `IN` list
    of 64 costs 64 seeks, ~100 µs, where the first bucket alone costs one)."""
    low, high = low_id >> BUCKET_BITS, high_id >> BUCKET_BITS
    if newest_first:
        top, size = high, 1
        while top >= low:
            yield list(range(top, max(low, top - size + 1) - 1, -1))
            top, size = top - size, min(size * 2, CHUNK)
    else:
        for bottom in range(low, high + 1, CHUNK):
            yield list(range(bottom, min(high, bottom + CHUNK - 1) + 1))


def chunk_buckets(chunk: int) -> list[int]:
    """The buckets of a chunk (`ImpressionVisitors.chunks`), an `IN` list for `BUCKET`."""
    first = chunk << (CHUNK_SHIFT - BUCKET_BITS)
    return list(range(first, first + (1 << (CHUNK_SHIFT - BUCKET_BITS))))


def walk_visitor(
    read: Read,
    select: str,
    where: str,
    params: tuple[Any, ...],
    ids: tuple[int, int],
    limit: int,
    newest_first: bool,
    order: str,
) -> list[Any]:
    """Up to `limit` rows of `select` ... `where` (which names the visitor) over the ids from
    ids[0] to ids[1], bucket by bucket through `events_visitor`, each chunk's rows in `order`
    (which must follow the walk's direction): the first `limit` of them in that order."""
    rows: list[Any] = []
    for buckets in bucket_chunks(*ids, newest_first=newest_first):
        marks = ", ".join("?" * len(buckets))
        found = read(
            f"{select} FROM events INDEXED BY events_visitor WHERE {BUCKET} IN ({marks}) "
            f"AND {where} ORDER BY {order} LIMIT ?",
            (*buckets, *params, limit - len(rows)),
        )
        rows += found
        if len(rows) >= limit:
            break
    return rows


class ImpressionVisitors:
    """Which chunks of the file may hold a visitor's accepted impressions, and the last one
    of each of the visitors that had one last (see the module)."""

    def __init__(self, recent: int | None = None) -> None:
        """`recent`: how many visitors' last impressions to hold at most (`RECENT`)."""
        self._filters: dict[int, bytearray] = {}
        """Chunk number -> a bitmap of `FILTER_BITS` bits, set by the hash of every visitor
        with an accepted impression in that chunk's requests (chunk numbers are ids >>
        `CHUNK_SHIFT`; a chunk's buckets are the walk's `IN` list)."""
        self._mask = (1 << FILTER_BITS) - 1
        self._generation = max(1, (RECENT if recent is None else recent) // 2)
        self._young: dict[Any, tuple[int, Any]] = {}
        """Visitor -> (request id, timestamp) of its last accepted impression known here, for
        the visitors added since `_old` filled up; at `_generation` visitors it becomes
        `_old`, whose visitors are let go (those added again since are in both)."""
        self._old: dict[Any, tuple[int, Any]] = {}

    def add(self, rows: list[tuple[Any, int, Any]]) -> None:
        """Each (visitor, request id, timestamp) row is an accepted impression of the visitor
        (its text, as the table holds it) at the timestamp (as stored), the newest of its so
        far; in request-id order."""
        if not rows:
            return
        mask, shift = self._mask, CHUNK_SHIFT
        first, last = rows[0][1] >> shift, rows[-1][1] >> shift
        parts = (
            [(first, rows)]
            if first == last
            else [(c, list(part)) for c, part in groupby(rows, lambda row: row[1] >> shift)]
        )
        for chunk, part in parts:
            bits = self._filters.get(chunk)
            if bits is None:
                bits = self._filters[chunk] = bytearray(1 << (FILTER_BITS - 3))
            for row in part:
                bit = hash(row[0]) & mask
                bits[bit >> 3] |= 1 << (bit & 7)
        young = self._young
        young.update([(row[0], (row[1], row[2])) for row in rows])
        if len(young) >= self._generation:
            self._old, self._young = young, {}

    def load(self, rows: Iterable[tuple[Any, int, Any]]) -> None:
        """`add` the rows (a query's, as many as the file holds) a few thousand at a time."""
        left = iter(rows)
        while part := list(islice(left, 4096)):
            self.add(part)

    def chunks(self, visitor: Any) -> list[int]:
        """The chunks that may hold an accepted impression of `visitor`, newest first: none
        means the file holds none (exact)."""
        bit = hash(visitor) & self._mask
        byte, flag = bit >> 3, 1 << (bit & 7)
        found = [chunk for chunk, bits in self._filters.items() if bits[byte] & flag]
        found.sort(reverse=True)
        return found

    def last(self, visitor: Any) -> tuple[int, Any] | None:
        """(request id, timestamp) of the visitor's last impression added here, if it is among
        the recent: the file may have lost it since (evicted, cleared, rolled back)."""
        found = self._young.get(visitor)
        return self._old.get(visitor) if found is None else found

    def trim(self, through: int) -> None:
        """The requests up to id `through` are gone for good (evicted or cleared, committed):
        let go of the chunks that held only those."""
        for chunk in [c for c in self._filters if ((c + 1) << CHUNK_SHIFT) - 1 <= through]:
            del self._filters[chunk]

    @property
    def held_chunks(self) -> int:
        """How many chunks' bitmaps are held."""
        return len(self._filters)
