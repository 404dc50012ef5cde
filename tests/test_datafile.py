"""Reading datafiles: what is indexed, and what a bad file is told."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import DATAFILE

from mockserver import Datafile, DatafileError, Datafiles
from mockserver.contract.datafile import MAX_DATAFILES


def data(**changes: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DATAFILE.read_text())
    loaded.update(changes)
    return loaded


def test_everything_a_batch_is_checked_against_is_indexed() -> None:
    df = Datafile.load(DATAFILE)
    assert (df.account_id, df.project_id, df.revision) == ("12001", "111001", "42")
    assert (df.anonymize_ip, df.bot_filtering) == (True, True)
    assert df.events == {"111095": "purchase", "111096": "signup", "111097": "kauf_€_ünï"}
    assert df.event_ids["purchase"] == "111095"
    assert df.attributes == {"7723280020": "plan", "7723280021": "città"}
    checkout = df.experiments["111127"]
    assert (checkout.key, checkout.layer_id) == ("checkout_ab", "111182")
    assert checkout.variations == {"111128": "control", "111129": "treatment"}
    assert checkout.flag_keys == ("checkout_flow",)
    rollout = df.experiments["default-rollout-91112"]  # rollout rules are experiments too
    assert (rollout.layer_id, rollout.flag_keys) == ("default-layer-91112", ("banner",))
    assert df.layers["111182"] == ("111127",)
    assert df.variations["v-91112-on"] == "default-rollout-91112"
    assert df.flags["checkout_flow"] == {"111127", "default-rollout-91111"}
    assert repr(df) == (
        "<Datafile datafile.json project=111001 revision=42 experiments=4 events=3>"
    )


def test_grouped_experiments_are_indexed() -> None:
    grouped = {
        "id": "9001",
        "key": "grouped_test",
        "layerId": "9002",
        "variations": [{"id": "9003", "key": "a"}],
    }
    df = Datafile.from_dict(data(groups=[{"id": "g1", "experiments": [grouped]}]))
    assert df.experiments["9001"].key == "grouped_test"
    assert df.layers["9002"] == ("9001",)


def test_holdouts_are_experiments_whose_campaign_is_their_own_id() -> None:
    holdout = {"id": "1681267", "key": "ho", "variations": [{"id": "1681268", "key": "off"}]}
    local = {**holdout, "id": "1681300", "key": "ho_local", "includedRules": ["111127"]}
    df = Datafile.from_dict(data(holdouts=[holdout], localHoldouts=[local]))
    experiment = df.experiments["1681267"]
    assert (experiment.holdout, experiment.layer_id, experiment.campaign_id) == (
        True,
        "",
        "1681267",
    )
    assert df.layers["1681267"] == ("1681267",)
    assert df.layers["1681300"] == ("1681300",)
    assert df.variations["1681268"] == "1681267"
    assert not df.experiments["111127"].holdout


def test_indexes_are_read_only() -> None:
    df = Datafile.load(DATAFILE)
    with pytest.raises(TypeError):
        df.events["1"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "datafile.json is not JSON"),
        ("[1]", "datafile.json is not a JSON object"),
        (json.dumps(data(version="5")), "version '5' is not a datafile version logx-mock reads"),
        (json.dumps(data(accountId=None)), "accountId must be a string, got None"),
        (json.dumps(data(events={"a": 1})), "events must be an array of objects"),
        (json.dumps(data(anonymizeIP="yes")), "anonymizeIP must be true or false, got 'yes'"),
        (
            json.dumps(data(experiments=[{"id": "1", "key": "k", "variations": []}])),
            "experiments[0].layerId must be a string, got None",
        ),
        (
            json.dumps(data(featureFlags=[{"key": "f", "experimentIds": [1]}])),
            "featureFlags[0].experimentIds must be an array of strings",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "version",
        "account",
        "events",
        "anonymize",
        "layer",
        "flag-ids",
    ],
)
def test_a_bad_datafile_is_named_with_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(DatafileError) as caught:
        Datafile.from_json(text, source="datafile.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("datafile.json")


def test_a_missing_file_says_where_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(DatafileError, match=r"cannot read the datafile .*No such file.*cdn"):
        Datafile.load(tmp_path / "missing.json")


def test_load_rereads_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "df.json"
    path.write_text(json.dumps(data(revision="1")))
    assert Datafile.load(path).revision == "1"
    assert Datafile.load(path) is Datafile.load(path)  # unchanged: cached
    path.write_text(json.dumps(data(revision="22")))
    os.utime(path, ns=(1, 10**18))
    assert Datafile.load(path).revision == "22"


def test_older_datafile_versions_without_flags_are_read() -> None:
    old = data(version="2")
    for name in ("featureFlags", "rollouts", "anonymizeIP", "botFiltering"):
        old.pop(name)
    df = Datafile.from_dict(old)
    assert df.flags == {}
    assert (df.anonymize_ip, df.bot_filtering) == (None, None)
    assert df.experiments["111127"].flag_keys == ()


def test_added_replaces_the_same_project_and_revision() -> None:
    first = Datafile.load(DATAFILE)
    again = Datafile.from_dict(data(), source="again")
    newer = Datafile.from_dict(data(revision="43"), source="newer")
    files = Datafiles().added(first).added(newer).added(again)
    assert [f.source for f in files.files] == ["newer", "again"]
    assert len(files) == 2 and files and not Datafiles()
    with pytest.raises(TypeError, match="Datafile objects"):
        Datafiles(("datafile.json",))  # type: ignore[arg-type]


def test_added_keeps_the_newest_revisions_and_datafiles() -> None:
    files = Datafiles()
    for revision in range(1, 7):
        files = files.added(Datafile.from_dict(data(revision=str(revision))))
    assert [f.revision for f in files.files] == ["3", "4", "5", "6"]  # MAX_REVISIONS
    for project in range(20):
        files = files.added(Datafile.from_dict({**data(), "projectId": f"p{project}"}))
    assert len(files) == MAX_DATAFILES
    assert [f.project_id for f in files.files] == [f"p{n}" for n in range(4, 20)]
