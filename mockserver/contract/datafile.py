"""An Optimizely datafile, read once and indexed for the checks in `crosscheck.py`.

A datafile is the JSON document the SDKs decide from (`https://cdn.optimizely.com/
datafiles/<SDK key>.json`). logx-mock reads versions 2, 3 and 4 and keeps only
what a batch can be checked against: the account and project, the revision, the
experiments (A/B tests, grouped experiments, rollout rules and holdouts alike)
with their layers and variations, the flags, the events and the attributes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import DatafileError
from .decoding import loads

__all__ = [
    "MAX_DATAFILES",
    "MAX_REVISIONS",
    "VERSIONS",
    "Datafile",
    "DatafileError",
    "Datafiles",
    "Experiment",
]

MAX_REVISIONS = 4
"""Revisions of one project kept at once (enough to tell an SDK on an old revision)."""
MAX_DATAFILES = 16
"""Datafiles kept at once, all projects together."""

VERSIONS = ("2", "3", "4")
HOLDOUTS = ("holdouts", "localHoldouts")
_HINT = "download it from https://cdn.optimizely.com/datafiles/<SDK_KEY>.json"


@dataclass(frozen=True)
class Experiment:
    """One experiment, rollout rule or holdout: its layer (the campaign) and variations."""

    id: str
    key: str
    layer_id: str
    variations: Mapping[str, str]
    """variation id -> variation key"""
    flag_keys: tuple[str, ...] = ()
    """The flags this experiment is a rule of (usually one; none for a legacy experiment)."""
    holdout: bool = False
    """A holdout (`holdouts`, `localHoldouts`): it has no layer and applies across flags."""

    @property
    def campaign_id(self) -> str:
        """The campaign_id the SDKs send for it: the layer, or (a holdout, an experiment
        without layerId) the experiment's own id."""
        return self.layer_id or self.id

    def describe(self) -> str:
        """`'111127' (checkout_ab)`; a rollout rule whose key is its id is named once."""
        return repr(self.id) if self.key == self.id else f"{self.id!r} ({self.key})"


@dataclass(frozen=True, eq=False)
class Datafile:
    """The parts of one datafile a batch is checked against. Build with `load` or
    `from_json`; every mapping is read-only."""

    source: str
    account_id: str
    project_id: str
    revision: str
    anonymize_ip: bool | None
    bot_filtering: bool | None
    experiments: Mapping[str, Experiment]
    """experiment id -> experiment (A/B tests, grouped experiments, rollout rules)"""
    layers: Mapping[str, tuple[str, ...]]
    """campaign id (a layer id, or a holdout's own id) -> the ids of the experiments in it"""
    variations: Mapping[str, str]
    """variation id -> the id of the experiment it belongs to"""
    events: Mapping[str, str]
    """event id -> event key"""
    event_ids: Mapping[str, str]
    """event key -> event id"""
    attributes: Mapping[str, str]
    """attribute id -> attribute key"""
    attribute_ids: Mapping[str, str]
    """attribute key -> attribute id"""
    flags: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """flag key -> the ids of its rules (experiments and rollout rules)"""
    sdk_key: str = ""
    """The key the CDN routes serve it under: its `sdkKey`, or (a file without one) the
    file name's stem; "" when it has neither, and then it is not served."""
    text: bytes = field(default=b"", repr=False)
    """The datafile exactly as given, what `GET /datafiles/{sdk_key}.json` answers."""
    modified: float | None = None
    """When its file last changed (epoch seconds); None for a datafile given as text."""

    def __repr__(self) -> str:
        return (
            f"<Datafile {self.source} project={self.project_id} revision={self.revision} "
            f"experiments={len(self.experiments)} events={len(self.events)}>"
        )

    @classmethod
    def load(cls, path: str | Path) -> Datafile:
        """Read a datafile from a file (cached while the file does not change)."""
        where = Path(path).expanduser()
        try:
            stat = where.resolve().stat()
        except OSError as exc:
            raise DatafileError(
                f"cannot read the datafile {str(path)!r}: {exc.strerror}; {_HINT}"
            ) from None
        return _load_cached(str(where.resolve()), stat.st_mtime_ns, stat.st_size, str(path))

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<datafile>") -> Datafile:
        """Parse a datafile's JSON text."""
        try:
            data = loads(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise DatafileError(f"{source} is not JSON ({exc}); {_HINT}") from None
        raw = text.encode() if isinstance(text, str) else bytes(text)
        return _Reader(source).datafile(data, raw)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<datafile>") -> Datafile:
        """Index an already parsed datafile."""
        return _Reader(source).datafile(data, json.dumps(data).encode())

    def describe(self) -> str:
        """One line for people: what `serve` and `validate` print of a loaded datafile."""
        return (
            f"{self.source} (account {self.account_id}, project {self.project_id}, revision "
            f"{self.revision}: {len(self.experiments)} experiment(s) and rollout rule(s), "
            f"{len(self.events)} event(s), {len(self.attributes)} attribute(s))"
        )

    def summary(self) -> dict[str, Any]:
        """What the admin API and the CLI show of a loaded datafile."""
        return {
            "source": self.source,
            "account_id": self.account_id,
            "project_id": self.project_id,
            "revision": self.revision,
            "anonymize_ip": self.anonymize_ip,
            "bot_filtering": self.bot_filtering,
            "experiments": len(self.experiments),
            "flags": len(self.flags),
            "events": len(self.events),
            "attributes": len(self.attributes),
            "sdk_key": self.sdk_key or None,
        }

    def experiment_with_key(self, key: Any) -> Experiment | None:
        """The experiment (or rollout rule) with this key, for "did you mean" hints."""
        return next((e for e in self.experiments.values() if e.key == key), None)


@functools.lru_cache(maxsize=64)
def _load_cached(resolved: str, mtime_ns: int, size: int, shown: str) -> Datafile:
    try:
        text = Path(resolved).read_bytes()
    except OSError as exc:
        raise DatafileError(f"cannot read the datafile {shown!r}: {exc.strerror}") from None
    datafile = Datafile.from_json(text, source=Path(shown).name or shown)
    # A file without sdkKey is served under the file name's stem.
    return dataclasses.replace(
        datafile, sdk_key=datafile.sdk_key or Path(shown).stem, modified=mtime_ns / 1e9
    )


@dataclass(frozen=True)
class Datafiles:
    """The datafiles one endpoint checks batches against (empty: no datafile checks)."""

    files: tuple[Datafile, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        for item in self.files:
            if not isinstance(item, Datafile):
                raise TypeError(f"Datafiles holds Datafile objects, got {item!r}")

    def __bool__(self) -> bool:
        return bool(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return f"<Datafiles {', '.join(repr(f) for f in self.files) or 'none'}>"

    @classmethod
    def load(cls, paths: Iterable[str | Path]) -> Datafiles:
        """Read every file; the first unreadable one raises `DatafileError`."""
        return cls(tuple(Datafile.load(p) for p in paths))

    def added(self, datafile: Datafile) -> Datafiles:
        """These datafiles plus `datafile`, which replaces one of the same project and
        revision. At most `MAX_REVISIONS` of one project and `MAX_DATAFILES` in all are
        kept: the oldest go first (each indexed datafile holds memory; a loop uploading new
        revisions must not grow the server without end)."""
        kept = [
            f
            for f in self.files
            if (f.project_id, f.revision) != (datafile.project_id, datafile.revision)
        ]
        same = [f for f in kept if f.project_id == datafile.project_id]
        dropped = {id(f) for f in same[: max(0, len(same) + 1 - MAX_REVISIONS)]}
        kept = [f for f in kept if id(f) not in dropped]
        kept = kept[max(0, len(kept) + 1 - MAX_DATAFILES) :]
        return Datafiles((*kept, datafile))


class _Reader:
    """Reads one datafile; every error names the file and the part that is wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> DatafileError:
        return DatafileError(f"{self.source}: {where} {problem}; is this an Optimizely datafile?")

    def text(self, obj: dict[str, Any], name: str, where: str) -> str:
        value = obj.get(name)
        if not isinstance(value, str):
            raise self.fail(
                f"{where}.{name}" if where else name, f"must be a string, got {value!r}"
            )
        return value

    def items(self, obj: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
        value = obj.get(name, [])
        here = f"{where}.{name}" if where else name
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise self.fail(here, "must be an array of objects")
        return value

    def flag(self, obj: dict[str, Any], name: str) -> bool | None:
        value = obj.get(name)
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(name, f"must be true or false, got {value!r}")

    def datafile(self, data: Any, text: bytes) -> Datafile:
        if not isinstance(data, dict):
            raise DatafileError(f"{self.source} is not a JSON object; {_HINT}")
        version = data.get("version")
        if version not in VERSIONS:
            raise DatafileError(
                f"{self.source}: version {version!r} is not a datafile version logx-mock reads "
                f"({', '.join(VERSIONS)}); {_HINT}"
            )
        rules = self.flag_rules(data)
        experiments, layers, variations = self.experiments(data, rules)
        events = self.pairs(data, "events")
        attributes = self.pairs(data, "attributes")
        return Datafile(
            source=self.source,
            account_id=self.text(data, "accountId", ""),
            project_id=self.text(data, "projectId", ""),
            revision=self.text(data, "revision", ""),
            anonymize_ip=self.flag(data, "anonymizeIP"),
            bot_filtering=self.flag(data, "botFiltering"),
            experiments=MappingProxyType(experiments),
            layers=MappingProxyType(layers),
            variations=MappingProxyType(variations),
            events=MappingProxyType(events),
            event_ids=MappingProxyType({k: i for i, k in events.items()}),
            attributes=MappingProxyType(attributes),
            attribute_ids=MappingProxyType({k: i for i, k in attributes.items()}),
            flags=MappingProxyType({key: frozenset(ids) for key, ids in rules.items()}),
            sdk_key=self.optional_text(data, "sdkKey"),
            text=text,
        )

    def optional_text(self, data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if value is None or isinstance(value, str):
            return value or ""
        raise self.fail(name, f"must be a string, got {value!r}")

    def pairs(self, data: dict[str, Any], name: str) -> dict[str, str]:
        """id -> key for `events` or `attributes`."""
        return {
            self.text(item, "id", f"{name}[{i}]"): self.text(item, "key", f"{name}[{i}]")
            for i, item in enumerate(self.items(data, name, ""))
        }

    def all_experiments(self, data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        found = [
            (f"experiments[{i}]", e) for i, e in enumerate(self.items(data, "experiments", ""))
        ]
        for name in HOLDOUTS:
            found += [(f"{name}[{i}]", e) for i, e in enumerate(self.items(data, name, ""))]
        for g, group in enumerate(self.items(data, "groups", "")):
            where = f"groups[{g}]"
            items = self.items(group, "experiments", where)
            found += [(f"{where}.experiments[{i}]", e) for i, e in enumerate(items)]
        for r, rollout in enumerate(self.items(data, "rollouts", "")):
            where = f"rollouts[{r}]"
            items = self.items(rollout, "experiments", where)
            found += [(f"{where}.experiments[{i}]", e) for i, e in enumerate(items)]
        return found

    def experiments(
        self, data: dict[str, Any], rules: dict[str, list[str]]
    ) -> tuple[dict[str, Experiment], dict[str, tuple[str, ...]], dict[str, str]]:
        """Experiments by id (a later one with the same id wins), and the layer and
        variation indexes derived from exactly those, so every index agrees."""
        flag_keys: dict[str, list[str]] = {}
        for flag_key, ids in rules.items():
            for exp_id in ids:
                flag_keys.setdefault(exp_id, []).append(flag_key)
        experiments: dict[str, Experiment] = {}
        for where, item in self.all_experiments(data):
            exp_id = self.text(item, "id", where)
            own = {
                self.text(v, "id", f"{where}.variations[{i}]"): self.text(
                    v, "key", f"{where}.variations[{i}]"
                )
                for i, v in enumerate(self.items(item, "variations", where))
            }
            holdout = where.startswith(HOLDOUTS)
            experiments[exp_id] = Experiment(
                id=exp_id,
                key=self.text(item, "key", where),
                # Holdouts have no layer: the SDKs send their id as the campaign_id.
                layer_id=""
                if holdout and "layerId" not in item
                else self.text(item, "layerId", where),
                variations=MappingProxyType(own),
                flag_keys=tuple(flag_keys.get(exp_id, ())),
                holdout=holdout,
            )
        layers: dict[str, tuple[str, ...]] = {}
        variations: dict[str, str] = {}
        for experiment in experiments.values():
            campaign = experiment.campaign_id
            layers[campaign] = (*layers.get(campaign, ()), experiment.id)
            for variation_id in experiment.variations:
                variations.setdefault(variation_id, experiment.id)
        return experiments, layers, variations

    def flag_rules(self, data: dict[str, Any]) -> dict[str, list[str]]:
        """flag key -> the ids of its experiments and of its rollout's rules."""
        rollouts = {
            self.text(r, "id", f"rollouts[{i}]"): [
                self.text(e, "id", f"rollouts[{i}].experiments")
                for e in self.items(r, "experiments", f"rollouts[{i}]")
            ]
            for i, r in enumerate(self.items(data, "rollouts", ""))
        }
        rules: dict[str, list[str]] = {}
        for i, flag in enumerate(self.items(data, "featureFlags", "")):
            where = f"featureFlags[{i}]"
            ids = flag.get("experimentIds", [])
            if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
                raise self.fail(f"{where}.experimentIds", "must be an array of strings")
            rollout = flag.get("rolloutId")
            rules[self.text(flag, "key", where)] = [
                *ids,
                *(rollouts.get(rollout, []) if isinstance(rollout, str) else []),
            ]
        return rules
