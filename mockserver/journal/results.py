"""Would it count? The table an experiment's results would show, from journaled requests.

A 204 says a batch was queued, not that its events count. `count_results` reads
journaled requests the way Optimizely's results attribute them, and says why
every other event does not count:

- a visitor counts in the variation of their **first** impression of an experiment
  (by event timestamp; the earlier arrival wins a tie); every decision with an
  `experiment_id` and a `variation_id` counts, whatever its rule type;
- a conversion (an event in a snapshot without decisions) counts for every experiment
  the visitor was in, if its timestamp is at or after the visitor's first impression
  there; each uuid counts once (the first arrival); `revenue` adds only an integer
  `revenue` on the event;
- only accepted requests count: rejected, malformed and faulted ones count for nothing.

It is a pure function of the requests (and the datafiles that name their ids); it reads
them twice, through a callable, so a journal can stream them: the first pass learns
where each visitor is, the second counts. Memory holds one entry per visitor and
experiment, the uuids that repeat, and the listed uncounted events, never the events.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..contract.datafile import Datafile, Datafiles
from ..model import EventRecord, RequestRecord
from .base import DEFAULT_LIMIT, Journal
from .filters import as_text, check_filters, event_matches

__all__ = [
    "MAX_TABLE_CELLS",
    "REASONS",
    "Results",
    "Uncounted",
    "count_results",
    "journal_results",
]

REASONS = {
    "before_impression": "a conversion before the visitor's first impression in an experiment",
    "no_experiment": "a conversion of a visitor in no experiment, or an impression without "
    "an experiment_id and a variation_id",
    "duplicate": "an event whose uuid arrived before (each uuid counts once)",
    "revenue_not_integer": "a counted conversion whose revenue is not an integer",
    "revenue_only_in_tags": "a counted conversion with revenue in tags but not on the event",
    "other_variation": "an impression in another variation than the visitor's first one",
    "rejected": "an event of a request production drops",
    "faulted": "an event of a request that got an injected fault",
}
"""Why an event does not count (or counts without its revenue), by name."""

MAX_TABLE_CELLS = 50_000
"""The most cells the results table lists (a variation is one, and each event key in its
row one more: some 4 MB of JSON). Every variation lists every key its experiment saw, so
a few thousand made-up variation ids and event keys would otherwise make millions."""

Read = Callable[[], Iterable[RequestRecord]]
_Position = tuple[int, int]  # (request id, event index): arrival order


class _First(NamedTuple):
    """A visitor's first impression in one experiment (a tuple: there is one per visitor
    and experiment, so it is kept small)."""

    experiment_id: str
    timestamp: int
    variation_id: str


@dataclass
class _Experiment:
    """What is known of an experiment's names, first non-empty value wins."""

    experiment_key: str | None = None
    rule_type: str | None = None
    flag_key: str | None = None
    variation_keys: dict[str, str | None] = field(default_factory=dict)
    """Every variation seen, and (with a datafile) every variation it lists, at 0 visitors."""

    def named(self, variation_id: str) -> bool:
        """Whether every name is known, so later decisions cannot change any."""
        return bool(
            self.experiment_key
            and self.flag_key
            and self.rule_type
            and self.variation_keys.get(variation_id)
        )


@dataclass
class _Cell:
    """One event key in one variation."""

    visitors: set[Any] = field(default_factory=set)
    conversions: int = 0
    revenue: int = 0


@dataclass(frozen=True)
class Uncounted:
    """One event that does not count (or counts without its revenue), and why."""

    reason: str
    message: str
    visitor_id: Any
    request_id: int
    path: str
    kind: str
    key: Any
    uuid: Any
    timestamp: Any
    experiment_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "message": self.message,
            "request_id": self.request_id,
            "path": self.path,
            "kind": self.kind,
            "key": self.key,
            "uuid": self.uuid,
            "timestamp": self.timestamp,
            "experiment_ids": list(self.experiment_ids),
        }


@dataclass
class Results:
    """The results table and the uncounted events; `to_dict()` is the admin API's answer."""

    experiments: list[dict[str, Any]]
    uncounted: list[Uncounted]
    reasons: dict[str, int]
    counted: dict[str, int]
    left_off: int = 0
    experiments_left_off: int = 0
    """Experiments past `MAX_TABLE_CELLS`, not listed."""
    truncated: bool = False
    """The table stopped at `MAX_TABLE_CELLS` (an experiment cut short says `partial`)."""

    def __repr__(self) -> str:
        return (
            f"<Results experiments={len(self.experiments)} counted={self.counted} "
            f"uncounted={sum(self.reasons.values())}>"
        )

    def to_dict(self) -> dict[str, Any]:
        """`{"experiments": [...], "uncounted": [{"visitor_id", "events": [...]}], ...}`."""
        by_visitor: dict[Any, list[dict[str, Any]]] = {}
        for item in self.uncounted:
            by_visitor.setdefault(as_text(item.visitor_id), []).append(item.to_dict())
        return {
            "experiments": self.experiments,
            "uncounted": [{"visitor_id": v, "events": e} for v, e in by_visitor.items()],
            "reasons": self.reasons,
            "counted": self.counted,
            "left_off": self.left_off,
            "experiments_left_off": self.experiments_left_off,
            "truncated": self.truncated,
        }


def count_results(
    read: Read,
    *,
    datafiles: Datafiles | None = None,
    filters: dict[str, str] | None = None,
    repeated: Container[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    start: int | None = None,
    end: int | None = None,
) -> Results:
    """The results the journaled requests `read()` returns would show.

    `read` is called twice and must give the same requests both times, oldest first.
    `datafiles` name ids the payload's metadata leaves unnamed (and win where both do);
    `filters` are the admin API's event filters (`client_name`, `visitor_id`, ...);
    `repeated` (when a journal knows it) holds every uuid that may repeat, so others
    need no remembering. At most `limit` uncounted events are listed. `start` and `end`
    (epoch milliseconds) keep only events with `start <= timestamp < end`.
    """
    choose = _Choice(dict(filters or {}), start, end)
    tally = _Tally(datafiles or Datafiles(), repeated, limit)
    for event, _ in choose(read()):
        tally.learn(event)
    for event, record in choose(read()):
        tally.judge(event, record)
    return tally.results()


def journal_results(
    journal: Journal,
    *,
    datafiles: Datafiles | None = None,
    after: int = 0,
    filters: dict[str, str] | None = None,
    limit: int = DEFAULT_LIMIT,
    start: int | None = None,
    end: int | None = None,
) -> tuple[Results, int]:
    """The results of the journal's requests after `after`, read in chunks, and the id
    of the newest request counted (both passes read up to it, whatever arrives meanwhile)."""
    until = journal.last_id
    result = count_results(
        lambda: journal.scan(after=after, until=until),
        datafiles=datafiles,
        filters=filters,
        repeated=journal.repeated_uuids(after=after),
        limit=limit,
        start=start,
        end=end,
    )
    return result, until


class _Choice:
    """Which events count at all: those matching the event filters, within the window."""

    def __init__(self, filters: dict[str, str], start: int | None, end: int | None) -> None:
        check_filters(filters)  # an empty window (end <= start) simply holds nothing
        self.filters, self.start, self.end = filters, start, end

    def __call__(
        self, records: Iterable[RequestRecord]
    ) -> Iterator[tuple[EventRecord, RequestRecord]]:
        windowed = self.start is not None or self.end is not None
        for record in records:
            for event in record.events:
                if event_matches(event, self.filters) and (not windowed or self._within(event)):
                    yield event, record

    def _within(self, event: EventRecord) -> bool:
        stamp = _stamp(event.timestamp)
        return (
            stamp is not None
            and (self.start is None or stamp >= self.start)
            and (self.end is None or stamp < self.end)
        )


def _text(value: Any) -> str | None:
    """An id or key as results name it: a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _visitor(event: EventRecord) -> str | None:
    """The visitor id as text, one shared copy per visitor (a journal holds many)."""
    text = as_text(event.visitor_id)
    return None if text is None else sys.intern(text)


def _stamp(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Tally:
    """The two passes' state: where visitors are, then what counts."""

    def __init__(self, datafiles: Datafiles, repeated: Container[str] | None, limit: int) -> None:
        self.datafiles = datafiles
        self.repeated = repeated
        self.limit = limit
        self.visitors: dict[str | None, tuple[_First, ...]] = {}
        self.ids: dict[str, str] = {}
        """One copy of each experiment and variation id, however many visitors name it."""
        self.experiments: dict[str, _Experiment] = {}
        self.first_uuid: dict[str, _Position] = {}
        self.cells: dict[tuple[str, str, str], _Cell] = {}
        self.keys: dict[str, set[str]] = {}
        """Per experiment, every event key its visitors sent: rows at 0 show what did not count."""
        self.uncounted: list[Uncounted] = []
        self.reasons: dict[str, int] = {}
        self.counted = {"impressions": 0, "conversions": 0}

    # Pass 1: who is where.
    def learn(self, event: EventRecord) -> None:
        if event.verdict != "accepted":
            return
        position = (event.request_id, event.index)
        uuid = as_text(event.uuid)
        if uuid is not None and (self.repeated is None or uuid in self.repeated):
            self.first_uuid.setdefault(uuid, position)
        timestamp = _stamp(event.timestamp)
        if timestamp is None or not event.decisions:
            return
        visitor = _visitor(event)
        firsts = self._where(visitor)
        for index, experiment_id, variation_id in self._decisions(event):
            first = firsts.get(experiment_id)
            if first is None or timestamp < first.timestamp:
                experiment_id = self.ids.setdefault(experiment_id, experiment_id)
                variation_id = self.ids.setdefault(variation_id, variation_id)
                firsts[experiment_id] = _First(experiment_id, timestamp, variation_id)
            self._name(event, index, experiment_id, variation_id)
        if firsts:
            self.visitors[visitor] = tuple(firsts.values())

    def _where(self, visitor: str | None) -> dict[str, _First]:
        """The visitor's first impression in each experiment they are in."""
        return {first.experiment_id: first for first in self.visitors.get(visitor, ())}

    def _decisions(self, event: EventRecord) -> Iterator[tuple[int, str, str]]:
        """(index, experiment_id, variation_id) of each decision that can count."""
        for index, decision in enumerate(event.decisions):
            if not isinstance(decision, dict):
                continue
            experiment_id = _text(decision.get("experiment_id"))
            variation_id = _text(decision.get("variation_id"))
            if experiment_id is not None and variation_id is not None:
                yield index, experiment_id, variation_id

    def _name(self, event: EventRecord, index: int, experiment_id: str, variation_id: str) -> None:
        """Keys from the datafile (journaled, else loaded), else from the metadata."""
        known = self.experiments.setdefault(experiment_id, _Experiment())
        if known.named(variation_id):
            return  # first non-empty value wins: nothing left to learn
        metadata = event.decisions[index].get("metadata")
        meta = metadata if isinstance(metadata, dict) else {}
        journaled = event.decision_keys[index] if index < len(event.decision_keys) else {}
        datafile = _datafile(self.datafiles, event.project_id)
        loaded = datafile.experiments.get(experiment_id) if datafile else None
        known.experiment_key = known.experiment_key or _first(
            journaled.get("experiment_key"), loaded and loaded.key, meta.get("rule_key")
        )
        flags = loaded.flag_keys if loaded else ()
        known.flag_key = known.flag_key or _first(
            journaled.get("flag_key"), flags[0] if flags else None, meta.get("flag_key")
        )
        known.rule_type = known.rule_type or _text(meta.get("rule_type"))
        for listed_id, listed_key in loaded.variations.items() if loaded else ():
            known.variation_keys.setdefault(listed_id, listed_key)
        if not known.variation_keys.get(variation_id):
            known.variation_keys[variation_id] = _first(
                journaled.get("variation_key"),
                loaded and loaded.variations.get(variation_id),
                meta.get("variation_key"),
            )

    # Pass 2: what counts.
    def judge(self, event: EventRecord, record: RequestRecord) -> None:
        if event.verdict != "accepted":
            self._not_counted(event, *_undelivered(event, record))
            return
        duplicate_of = self._duplicate_of(event)
        if duplicate_of is not None:
            self._not_counted(
                event,
                "duplicate",
                f"uuid {event.uuid!r} arrived before (request #{duplicate_of[0]}): "
                "Optimizely counts each uuid once; give every event its own uuid",
            )
        elif event.decisions:
            self._impression(event)
        elif event.kind == "impression":
            self._not_counted(
                event,
                "no_experiment",
                "an impression without decisions counts in no experiment; send the "
                "decision (experiment_id, variation_id) in the same snapshot",
            )
        else:
            self._conversion(event)

    def _duplicate_of(self, event: EventRecord) -> _Position | None:
        uuid = as_text(event.uuid)
        first = self.first_uuid.get(uuid) if uuid is not None else None
        if first is None or first == (event.request_id, event.index):
            return None
        return first

    def _impression(self, event: EventRecord) -> None:
        visitor = self._where(_visitor(event))
        decisions = list(self._decisions(event))
        if not decisions:
            self._not_counted(
                event,
                "no_experiment",
                "no decision with both an experiment_id and a variation_id (a flag with no "
                "matching rule, or a rule without a variation): it counts in no experiment",
            )
            return
        elsewhere = [
            (experiment_id, visitor[experiment_id])
            for _, experiment_id, variation_id in decisions
            if experiment_id in visitor and visitor[experiment_id].variation_id != variation_id
        ]
        if len(elsewhere) == len(decisions):
            experiment_id, first = elsewhere[0]
            self._not_counted(
                event,
                "other_variation",
                f"visitor {event.visitor_id!r} counts in variation {first.variation_id!r} of "
                f"experiment {experiment_id!r}, from an earlier impression (timestamp "
                f"{first.timestamp}); a visitor counts in the variation of their first "
                "impression only",
                tuple(e for e, _ in elsewhere),
            )
            return
        self.counted["impressions"] += 1

    def _conversion(self, event: EventRecord) -> None:
        visitor_id = _visitor(event)
        visitor = self._where(visitor_id)
        timestamp = _stamp(event.timestamp)
        if not visitor:
            self._not_counted(
                event,
                "no_experiment",
                f"visitor {event.visitor_id!r} has no impression in any experiment: results "
                "attribute conversions to bucketed visitors only; decide (or activate) for "
                "this visitor before tracking",
            )
            return
        key = _event_key(event, self.datafiles)
        for experiment_id in visitor:
            self.keys.setdefault(experiment_id, set()).add(key)
        after = {
            e: f for e, f in visitor.items() if timestamp is not None and f.timestamp <= timestamp
        }
        before = tuple(sorted(set(visitor) - set(after)))
        if before:
            firsts = ", ".join(f"{e!r} at {visitor[e].timestamp}" for e in before)
            self._not_counted(
                event,
                "before_impression",
                f"timestamp {event.timestamp} is before the visitor's first impression in "
                f"{firsts}: a conversion counts only at or after it; track after the decision",
                before,
            )
        if not after:
            return
        self.counted["conversions"] += 1
        revenue = self._revenue(event)
        for experiment_id, first in after.items():
            cell = self.cells.setdefault((experiment_id, first.variation_id, key), _Cell())
            cell.visitors.add(visitor_id)
            cell.conversions += 1
            cell.revenue += revenue

    def _revenue(self, event: EventRecord) -> int:
        revenue = _stamp(event.revenue)
        if revenue is not None:
            return revenue
        tags = event.tags if isinstance(event.tags, dict) else {}
        shown = event.revenue if event.revenue is not None else tags.get("revenue")
        if shown is None:
            return 0
        if event.revenue is None and _stamp(shown) is not None:
            self._not_counted(
                event,
                "revenue_only_in_tags",
                f"revenue {shown!r} is only in tags: results add the event's own `revenue`; "
                "send it there too (the SDKs do, from the `revenue` tag)",
            )
        else:
            self._not_counted(
                event,
                "revenue_not_integer",
                f"revenue {shown!r} is not an integer: results add only integer revenue, in "
                "cents (4200 for $42.00); the conversion counts, its revenue does not",
            )
        return 0

    def _not_counted(
        self, event: EventRecord, reason: str, message: str, experiments: tuple[str, ...] = ()
    ) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.uncounted) >= self.limit:
            return
        self.uncounted.append(
            Uncounted(
                reason=reason,
                message=message,
                visitor_id=event.visitor_id,
                request_id=event.request_id,
                path=event.path,
                kind=event.kind,
                key=event.key,
                uuid=event.uuid,
                timestamp=event.timestamp,
                experiment_ids=experiments,
            )
        )

    def results(self) -> Results:
        listed = len(self.uncounted)
        table = self._table()
        return Results(
            experiments=table,
            uncounted=self.uncounted,
            reasons=dict(sorted(self.reasons.items())),
            counted=self.counted,
            left_off=sum(self.reasons.values()) - listed,
            experiments_left_off=len(self.experiments) - len(table),
            truncated=len(table) < len(self.experiments) or any(e.get("partial") for e in table),
        )

    def _table(self) -> list[dict[str, Any]]:
        """The experiments in order, as many cells as `MAX_TABLE_CELLS` allows."""
        visitors: dict[tuple[str, str], int] = {}
        for firsts in self.visitors.values():
            for first in firsts:
                slot = (first.experiment_id, first.variation_id)
                visitors[slot] = visitors.get(slot, 0) + 1
        order = sorted(
            self.experiments.items(),
            key=lambda item: (item[1].flag_key or "", item[1].experiment_key or "", item[0]),
        )
        room, table = MAX_TABLE_CELLS, []
        for experiment_id, known in order:
            if room <= 0:
                break
            every_key = sorted(self.keys.get(experiment_id, ()))
            keys = every_key[: room - 1]
            chosen = sorted(known.variation_keys.items(), key=lambda vk: (vk[1] or "", vk[0]))
            chosen = chosen[: max(1, room // (1 + len(keys)))]
            room -= len(chosen) * (1 + len(keys))
            entry: dict[str, Any] = {
                "experiment_id": experiment_id,
                "experiment_key": known.experiment_key,
                "rule_type": known.rule_type,
                "flag_key": known.flag_key,
                "variations": [
                    self._variation(experiment_id, v, k, visitors, keys) for v, k in chosen
                ],
            }
            if len(keys) < len(every_key) or len(chosen) < len(known.variation_keys):
                entry["partial"] = True
            table.append(entry)
        return table

    def _variation(
        self,
        experiment_id: str,
        variation_id: str,
        variation_key: str | None,
        visitors: dict[tuple[str, str], int],
        keys: list[str],
    ) -> dict[str, Any]:
        events = []
        for key in keys:
            cell = self.cells.get((experiment_id, variation_id, key), _Cell())
            events.append(
                {
                    "key": key,
                    "unique_conversions": len(cell.visitors),
                    "conversions": cell.conversions,
                    "revenue": cell.revenue,
                }
            )
        return {
            "variation_id": variation_id,
            "variation_key": variation_key,
            "visitors": visitors.get((experiment_id, variation_id), 0),
            "events": events,
        }


def _first(*values: Any) -> str | None:
    return next((v for v in values if _text(v) is not None), None)


def _datafile(datafiles: Datafiles, project_id: Any) -> Datafile | None:
    """The loaded datafile of the event's project (the newest given), or the only one."""
    same = [f for f in datafiles.files if f.project_id == project_id]
    if same:
        return same[-1]
    if len(datafiles) == 1 and _text(project_id) is None:
        return datafiles.files[0]
    return None


def _event_key(event: EventRecord, datafiles: Datafiles) -> str:
    """A conversion's key: as sent, else the datafile's for its entity_id."""
    datafile = _datafile(datafiles, event.project_id)
    named = datafile.events.get(event.entity_id) if datafile and event.entity_id else None
    return _first(event.key, event.entity_key, named) or f"entity_id {event.entity_id!r}"


def _undelivered(event: EventRecord, record: RequestRecord) -> tuple[str, str]:
    if event.verdict == "faulted":
        kind = (record.fault or {}).get("kind", "fault")
        return (
            "faulted",
            f"the request got an injected {kind}: the client was not told it was recorded "
            "(it counts if a retry was accepted)",
        )
    first = f": {record.errors[0]}" if record.errors else ""
    more = f" (and {len(record.errors) - 1} more)" if len(record.errors) > 1 else ""
    return (
        "rejected",
        f"the request was {event.verdict}{first}{more}; production drops the whole batch",
    )
