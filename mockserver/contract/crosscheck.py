"""Checking a batch against the project's datafile: the ids that make events vanish.

The real endpoint answers 204 to an event id from another project or a variation
of another experiment, and results then never show them. No schema sees that; the
datafile does. `crosscheck(payload, datafiles, report)` adds one **warning** per
wrong id at its JSON path (the status never changes, exactly like production) and
returns the datafile keys of the ids it resolved (`{path: key}`), which the
journal, the admin API and the page show next to the ids.

Null and empty ids are skipped: `validation.py` warns about them already, and the
SDKs send them on purpose (no-decision impressions, the Python SDK's null
variation_id for an "everyone else" rollout rule, `flag_key: ""` from activate).
"""

from __future__ import annotations

from typing import Any, TypeGuard

from ..batch import (
    AttributeAt,
    BatchAt,
    DecisionAt,
    EventAt,
    Keys,
    MetadataAt,
    VisitorAt,
    render_keys,
    walk,
)
from ..violations import Report, describe
from .datafile import Datafile, Datafiles, Experiment

__all__ = ["BOT_FILTERING", "DATAFILE_RULES", "choose", "crosscheck", "resolve"]

BOT_FILTERING = "$opt_bot_filtering"

DATAFILE_RULES = {
    "account_mismatch": "account_id is not the datafile's accountId",
    "project_mismatch": "project_id is not the project of any datafile given",
    "revision_mismatch": "revision is not the datafile's revision",
    "unknown_event": "a conversion's entity_id (or key) is not an event of the datafile",
    "event_key_mismatch": "a conversion's key is not the key of the event its entity_id names",
    "unknown_campaign": "a decision's campaign_id is not a layer id of the datafile",
    "campaign_mismatch": "a decision's campaign_id is the layer of another experiment",
    "unknown_experiment": "a decision's experiment_id is not an experiment or rollout rule",
    "variation_mismatch": "a decision's variation_id does not belong to its experiment",
    "metadata_mismatch": "decision metadata (flag_key, rule_key, variation_key) contradicts ids",
    "unknown_attribute": "an attribute's entity_id (or key) is not an attribute of the datafile",
    "attribute_mismatch": "an attribute's key is not the datafile's key for its entity_id",
    "anonymize_ip_mismatch": "anonymize_ip differs from the datafile's anonymizeIP",
    "bot_filtering": "$opt_bot_filtering is missing or false while the datafile turns bot "
    "filtering on",
}
"""Warnings that need a datafile; like every warning they never change the status."""


def crosscheck(payload: Any, datafiles: Datafiles, report: Report) -> dict[str, str]:
    """Warn about every id of `payload` its datafile contradicts; return the keys of the
    ids the datafile resolves, by JSON path. Never raises, whatever `payload` is."""
    return render_keys(resolve(walk(payload), datafiles, report))


def resolve(batch: BatchAt, datafiles: Datafiles, report: Report) -> Keys:
    """`crosscheck` over a walked batch, with the keys by structured path."""
    if not datafiles or not batch.is_object:
        return {}
    datafile = choose(batch.node, datafiles, report)
    if datafile is None:
        return {}
    check = _Crosscheck(datafile, report)
    check.batch(batch)
    return check.keys


def choose(payload: dict[str, Any], datafiles: Datafiles, report: Report) -> Datafile | None:
    """The datafile of the batch's project (and revision), warning where none fits.

    A batch of another project is not checked further: every id would differ.
    """
    project, revision = payload.get("project_id"), payload.get("revision")
    same = [f for f in datafiles.files if f.project_id == project]
    if not same:
        if len(datafiles) == 1 and not _given(project):
            return datafiles.files[0]  # project_id is optional: one datafile is the one
        if _given(project):
            projects = ", ".join(sorted({f.project_id for f in datafiles.files}))
            report.warn(
                "project_id",
                "project_mismatch",
                f"project_id {_q(project)} is not the project of the datafile(s) given "
                f"({projects}): these events go to another project's results",
                projects,
                project,
            )
        return None
    exact = [f for f in same if f.revision == revision]
    if exact:
        return exact[-1]
    newest = max(same, key=lambda f: int(f.revision) if f.revision.isdigit() else -1)
    if _given(revision):
        revisions = ", ".join(f.revision for f in same)
        report.warn(
            "revision",
            "revision_mismatch",
            f"revision {_q(revision)} is not the datafile's revision ({revisions}): the SDK "
            "decided with another version of the project, so ids and keys may not match; "
            "give logx-mock the datafile the SDK used",
            revisions,
            revision,
        )
    return newest


def _q(value: Any) -> str:
    """A payload value quoted for a message, long strings cut short (ids come from
    whoever sends the batch)."""
    return repr(describe(value))


def _given(value: Any) -> TypeGuard[str]:
    """A non-empty string id (null and empty ids are validation's `empty_id`)."""
    return isinstance(value, str) and value != ""


class _Crosscheck:
    """One batch against one datafile; collects warnings into `report` and keys in `keys`."""

    def __init__(self, datafile: Datafile, report: Report) -> None:
        self.df = datafile
        self.report = report
        self.keys: Keys = {}
        self.project = f"project {datafile.project_id}"

    def batch(self, batch: BatchAt) -> None:
        payload = batch.node
        account = payload.get("account_id")
        if _given(account) and account != self.df.account_id:
            self.report.warn(
                "account_id",
                "account_mismatch",
                f"account_id {_q(account)} is not the account of {self.project}, which is "
                f"{self.df.account_id!r}: these events go to another account",
                self.df.account_id,
                account,
            )
        self.anonymize_ip(payload)
        for visitor in batch.visitors:
            if not visitor.is_object:
                continue
            self.attributes(visitor)
            for snapshot in visitor.snapshots:
                for decision in snapshot.decisions:
                    if decision.is_object:
                        self.decision(decision)
                for event in snapshot.events:
                    if event.is_object and not event.is_impression:
                        self.conversion(event)

    def anonymize_ip(self, payload: dict[str, Any]) -> None:
        wanted = self.df.anonymize_ip
        sent = payload.get("anonymize_ip", True)
        if wanted is None or not isinstance(sent, bool) or sent == wanted:
            return
        absent = " (absent, so true)" if "anonymize_ip" not in payload else ""
        self.report.warn(
            "anonymize_ip",
            "anonymize_ip_mismatch",
            f"anonymize_ip is {str(sent).lower()}{absent} but the datafile's anonymizeIP is "
            f"{str(wanted).lower()}: the SDK is not following the project's IP setting",
            str(wanted).lower(),
            sent,
        )

    # Attributes -------------------------------------------------------------

    def attributes(self, visitor: VisitorAt) -> None:
        bot: AttributeAt | None = None
        for attribute in visitor.attributes:
            if not attribute.is_object:
                continue
            entity, key = attribute.get("entity_id"), attribute.get("key")
            if BOT_FILTERING in (entity, key):
                bot = attribute
            elif not any(isinstance(x, str) and x.startswith("$opt_") for x in (entity, key)):
                self.attribute(entity, key, attribute)
        if self.df.bot_filtering:
            # Only a project that filters bots needs the attribute: where the datafile
            # leaves bot filtering off, nothing is filtered whatever the batch says.
            self.bot_filtering(bot, visitor)

    def attribute(self, entity: Any, key: Any, at: AttributeAt) -> None:
        known = self.df.attributes.get(entity) if _given(entity) else None
        if known is not None:
            self.keys[at.at("entity_id")] = known
            if isinstance(key, str) and key != known:
                self.report.warn(
                    at.where_of("key"),
                    "attribute_mismatch",
                    f"attribute {_q(entity)} is {known!r} in the datafile, not {_q(key)}",
                    known,
                    key,
                )
            return
        if _given(entity):
            where, unknown = at.where_of("entity_id"), entity
        elif _given(key) and key not in self.df.attribute_ids:
            where, unknown = at.where_of("key"), key
        else:
            return
        suggestion = self.df.attribute_ids.get(key) if _given(key) else None
        hint = f"; the datafile's attribute {_q(key)} has id {suggestion!r}" if suggestion else ""
        self.report.warn(
            where,
            "unknown_attribute",
            f"attribute {_q(unknown)} is not an attribute of {self.project}{hint}: "
            "results cannot segment by it",
            suggestion or "an attribute of the datafile",
            unknown,
        )

    def bot_filtering(self, bot: AttributeAt | None, visitor: VisitorAt) -> None:
        """The datafile turns bot filtering on: each visitor must carry it as true."""
        if bot is None:
            self.report.warn(
                visitor.where_of("attributes"),
                "bot_filtering",
                f"'{BOT_FILTERING}' is missing while the datafile sets botFiltering true: "
                "the SDKs send it with every visitor, and results apply the project's bot "
                "filtering only to visitors that carry it",
                f"{BOT_FILTERING} = true",
                None,
            )
            return
        value = bot.get("value")
        if value is False:
            self.report.warn(
                bot.where_of("value"),
                "bot_filtering",
                f"'{BOT_FILTERING}' is false but the datafile's botFiltering is true",
                "true",
                value,
            )

    # Decisions --------------------------------------------------------------

    def decision(self, decision: DecisionAt) -> None:
        metadata = decision.metadata
        exp_id = decision.get("experiment_id")
        experiment = self.df.experiments.get(exp_id) if _given(exp_id) else None
        if experiment is not None:
            self.keys[decision.at("experiment_id")] = experiment.key
            if experiment.flag_keys:
                self.keys[decision.path] = experiment.flag_keys[0]
        elif _given(exp_id):
            rule_key = metadata.get("rule_key") if metadata else None
            self.unknown_experiment(exp_id, rule_key, decision)
        self.campaign(decision.get("campaign_id"), experiment, decision)
        self.variation(decision.get("variation_id"), experiment, decision)
        if metadata is not None:
            self.metadata(metadata, experiment, decision.get("variation_id"))

    def unknown_experiment(self, exp_id: str, rule_key: Any, decision: DecisionAt) -> None:
        named = self.df.experiment_with_key(rule_key) if _given(rule_key) else None
        hint = f"; the datafile's {_q(rule_key)} has id {named.id!r}" if named else ""
        self.report.warn(
            decision.where_of("experiment_id"),
            "unknown_experiment",
            f"experiment_id {_q(exp_id)} is not an experiment or rollout rule of "
            f"{self.project}{hint}: this decision counts for no experiment",
            named.id if named else "an experiment id of the datafile",
            exp_id,
        )

    def campaign(self, campaign: Any, experiment: Experiment | None, decision: DecisionAt) -> None:
        if not _given(campaign):
            return
        owners = self.df.layers.get(campaign)
        if owners is None:
            hint = (
                f"; experiment {experiment.describe()} is in layer {experiment.campaign_id!r}"
                if experiment
                else ""
            )
            self.report.warn(
                decision.where_of("campaign_id"),
                "unknown_campaign",
                f"campaign_id {_q(campaign)} is not a layer id of {self.project}{hint}: "
                "the decision belongs to no campaign",
                experiment.campaign_id if experiment else "a layer id of the datafile",
                campaign,
            )
        elif experiment is not None and campaign != experiment.campaign_id:
            others = ", ".join(self.df.experiments[i].describe() for i in owners)
            self.report.warn(
                decision.where_of("campaign_id"),
                "campaign_mismatch",
                f"campaign_id {_q(campaign)} is the layer of {others}, not of experiment "
                f"{experiment.describe()}, whose layer is {experiment.campaign_id!r}",
                experiment.campaign_id,
                campaign,
            )

    def variation(
        self, variation_id: Any, experiment: Experiment | None, decision: DecisionAt
    ) -> None:
        if not _given(variation_id):
            return
        owner = self.df.variations.get(variation_id)
        if experiment is None:
            if owner is not None:  # no (known) experiment to hold it to; still name it
                known = self.df.experiments[owner].variations[variation_id]
                self.keys[decision.at("variation_id")] = known
            return
        key = experiment.variations.get(variation_id)
        if key is not None:
            self.keys[decision.at("variation_id")] = key
            return
        where = (
            f"; it is a variation of {self.df.experiments[owner].describe()}"
            if owner
            else "; no experiment of the datafile has it"
        )
        listed = ", ".join(f"{i} ({k})" for i, k in experiment.variations.items())
        self.report.warn(
            decision.where_of("variation_id"),
            "variation_mismatch",
            f"variation_id {_q(variation_id)} is not a variation of experiment "
            f"{experiment.describe()}{where}: the visitor is counted in no variation",
            listed or "a variation of the experiment",
            variation_id,
        )

    def metadata(self, meta: MetadataAt, experiment: Experiment | None, variation_id: Any) -> None:
        flag_key = meta.get("flag_key")
        if _given(flag_key):
            self.flag(flag_key, experiment, meta.where_of("flag_key"))
        if experiment is None:
            return
        rule_key = meta.get("rule_key")
        if _given(rule_key) and rule_key != experiment.key:
            self.mismatch(
                meta.where_of("rule_key"),
                f"rule_key {_q(rule_key)} does not match experiment_id {experiment.id!r}, "
                f"which is {experiment.key!r} in the datafile",
                experiment.key,
                rule_key,
            )
        variation_key = meta.get("variation_key")
        if not _given(variation_key):
            return
        if _given(variation_id):
            wanted = experiment.variations.get(variation_id)
            if wanted is not None and wanted != variation_key:
                self.mismatch(
                    meta.where_of("variation_key"),
                    f"variation_key {_q(variation_key)} does not match variation_id "
                    f"{_q(variation_id)}, which is {wanted!r} in the datafile",
                    wanted,
                    variation_key,
                )
        elif variation_key not in experiment.variations.values():
            self.mismatch(
                meta.where_of("variation_key"),
                f"variation_key {_q(variation_key)} is not a variation of experiment "
                f"{experiment.describe()}",
                ", ".join(experiment.variations.values()),
                variation_key,
            )

    def flag(self, flag_key: str, experiment: Experiment | None, path: str) -> None:
        rules = self.df.flags.get(flag_key)
        if rules is None:
            self.mismatch(
                path,
                f"flag_key {_q(flag_key)} is not a flag of {self.project}",
                ", ".join(experiment.flag_keys) if experiment and experiment.flag_keys else None,
                flag_key,
            )
        # A holdout applies across flags: any flag of the datafile can carry it.
        elif experiment is not None and not experiment.holdout and experiment.id not in rules:
            owners = ", ".join(repr(k) for k in experiment.flag_keys) or "no flag"
            self.mismatch(
                path,
                f"experiment {experiment.describe()} is not a rule of flag {_q(flag_key)}; "
                f"it is a rule of {owners}",
                ", ".join(experiment.flag_keys) or None,
                flag_key,
            )

    def mismatch(self, path: str, message: str, expected: str | None, actual: Any) -> None:
        self.report.warn(path, "metadata_mismatch", message, expected, actual)

    # Conversions ------------------------------------------------------------

    def conversion(self, event: EventAt) -> None:
        entity, key = event.get("entity_id"), event.get("key")
        if _given(entity):
            known = self.df.events.get(entity)
            if known is None:
                self.unknown_event(event.where_of("entity_id"), entity, key)
                return
            self.keys[event.at("entity_id")] = known
            if isinstance(key, str) and key != known:
                self.report.warn(
                    event.where_of("key"),
                    "event_key_mismatch",
                    f"key {_q(key)} does not match entity_id {_q(entity)}, which is the event "
                    f"{known!r} in the datafile",
                    known,
                    key,
                )
        elif entity is None and _given(key) and key not in self.df.event_ids:
            self.unknown_event(event.where_of("key"), key, None)

    def unknown_event(self, path: str, unknown: str, key: Any) -> None:
        suggestion = self.df.event_ids.get(key) if _given(key) else None
        hint = f"; the datafile's event {_q(key)} has id {suggestion!r}" if suggestion else ""
        self.report.warn(
            path,
            "unknown_event",
            f"{_q(unknown)} is not an event of {self.project}{hint}: this conversion counts "
            "for no metric",
            suggestion or "an event of the datafile",
            unknown,
        )
