"""The event filters, written once: their names, what each matches, the values an enum
filter takes, and how an event matches them.

The admin API (`/_mock/events`, `/_mock/results`), `logx-mock events`, the OpenAPI document and
every journal read these. The memory journal applies `event_matches` to each event; the
SQLite journal keeps the same values in columns (`column_values`, `decision_values`), so both
answer alike. They match what the pytest handle matches (`pytest_plugin.matching`), with its
two fallbacks on the datafile: a conversion sent without its key is found by the datafile's
key of its `entity_id`, and `experiment_key`, `variation_key` and `flag_key` by the keys the
datafile resolved for a decision that carried only ids.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..model import EVENT_KINDS, VERDICTS, EventRecord

__all__ = [
    "COLUMN_FILTERS",
    "DECISION_FILTERS",
    "EVENT_FILTERS",
    "FILTER_CHOICES",
    "FILTER_HELP",
    "as_text",
    "check_filters",
    "column_values",
    "decision_values",
    "event_matches",
]

FILTER_HELP: dict[str, str] = {
    "visitor_id": "the visitor's id",
    "key": "the event key as sent, or the datafile's key of its entity_id when sent without one",
    "kind": "impression (a decision) or conversion (a tracked event)",
    "entity_id": "the event's entity_id",
    "uuid": "the event's uuid",
    "account_id": "the batch's account_id",
    "project_id": "the batch's project_id",
    "client_name": "the SDK's name (client_name), e.g. python-sdk",
    "verdict": "what became of its request: accepted, rejected or faulted",
    "campaign_id": "a decision's campaign_id (layer)",
    "experiment_id": "a decision's experiment_id (rule)",
    "variation_id": "a decision's variation_id",
    "experiment_key": "a decision's experiment (rule) key: the metadata's rule_key, or the "
    "datafile's key of its experiment_id",
    "flag_key": "a decision's flag_key: the metadata's, or the datafile's",
    "rule_key": "a decision's metadata rule_key, as sent",
    "rule_type": "a decision's metadata rule_type, e.g. feature-test, rollout",
    "variation_key": "a decision's variation_key: the metadata's, or the datafile's",
}
"""What each filter matches (exactly, on the text form; booleans as true/false)."""
COLUMN_FILTERS = (
    "visitor_id",
    "key",
    "kind",
    "entity_id",
    "uuid",
    "account_id",
    "project_id",
    "client_name",
    "verdict",
)
"""Filters on the event itself (columns of the SQLite `events` table)."""
DECISION_FILTERS = (
    "campaign_id",
    "experiment_id",
    "variation_id",
    "experiment_key",
    "flag_key",
    "rule_key",
    "rule_type",
    "variation_key",
)
"""Filters on the event's decisions: an event matches when one of its decisions has every
value asked for (columns of the SQLite `decisions` table)."""
EVENT_FILTERS = (*COLUMN_FILTERS, *DECISION_FILTERS)
FILTER_CHOICES: dict[str, tuple[str, ...]] = {"kind": EVENT_KINDS, "verdict": VERDICTS}
"""The values an enum filter takes; anything else is refused, not matched against nothing."""


def as_text(value: Any) -> str | None:
    """The text form filters compare against (JSON spelling for booleans)."""
    if value is None:
        return None
    kind = value.__class__
    if kind is str and value.isascii():  # most cells: nothing to do
        return value  # type: ignore[no-any-return]
    if kind is bool:
        return "true" if value else "false"
    text = str(value)
    if not text.isascii():
        # Lone surrogates (valid JSON escapes) have no UTF-8 form; SQLite needs one.
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def check_filters(filters: Mapping[str, Any]) -> None:
    """Raise ConfigError naming an unknown filter (and the closest one), or an enum value
    the filter cannot take (and the values it can)."""
    for name, value in filters.items():
        if name not in FILTER_HELP:
            close = difflib.get_close_matches(name, EVENT_FILTERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown event filter {name!r}{hint}; use {', '.join(EVENT_FILTERS)}"
            )
        allowed = FILTER_CHOICES.get(name)
        if allowed is not None and value not in allowed:
            raise ConfigError(f"{name}={value!r} is not a {name}; use {', '.join(allowed)}")


def column_values(event: EventRecord) -> tuple[str | None, ...]:
    """The event's values for `COLUMN_FILTERS` (in that order), as filters compare them.

    Written out, not looped over the names: every stored event passes here (a 3.5 MB
    batch, 5,762 times); tests/test_hot_path.py holds it to the names' order."""
    key = event.key
    if (key is None or key == "") and event.entity_key is not None:
        key = event.entity_key
    visitor_id, entity_id, uuid = event.visitor_id, event.entity_id, event.uuid
    account_id, project_id, client_name = event.account_id, event.project_id, event.client_name
    # An ASCII string is its own text: checked here, not in a call to as_text per cell.
    return (
        visitor_id if visitor_id.__class__ is str and visitor_id.isascii() else as_text(visitor_id),
        key if key.__class__ is str and key.isascii() else as_text(key),
        event.kind,
        entity_id if entity_id.__class__ is str and entity_id.isascii() else as_text(entity_id),
        uuid if uuid.__class__ is str and uuid.isascii() else as_text(uuid),
        account_id if account_id.__class__ is str and account_id.isascii() else as_text(account_id),
        project_id if project_id.__class__ is str and project_id.isascii() else as_text(project_id),
        client_name
        if client_name.__class__ is str and client_name.isascii()
        else as_text(client_name),
        event.verdict,
    )


def decision_values(event: EventRecord) -> list[tuple[str | None, ...]]:
    """For each decision of the event, its values for `DECISION_FILTERS`."""
    return [
        tuple(as_text(event.decision_value(index, name)) for name in DECISION_FILTERS)
        for index in range(len(event.decisions))
    ]


def event_matches(event: EventRecord, filters: Mapping[str, Any]) -> bool:
    """Whether `event` passes every filter (exact match on the text form)."""
    wanted = {k: as_text(v) for k, v in filters.items()}
    if any(as_text(_column(event, k)) != v for k, v in wanted.items() if k in COLUMN_FILTERS):
        return False
    asked = [(DECISION_FILTERS.index(k), v) for k, v in wanted.items() if k in DECISION_FILTERS]
    if not asked:
        return True
    return any(all(row[i] == v for i, v in asked) for row in decision_values(event))


def _column(event: EventRecord, name: str) -> Any:
    return event.named_key if name == "key" else getattr(event, name)
