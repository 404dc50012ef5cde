"""The README's examples run, and its rule tables list every rule."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from helpers import DATAFILE

from mockserver import DATAFILE_RULES
from mockserver.contract.validation import ERROR_RULES, WARNING_RULES

pytest_plugins = ["pytester"]

README = (Path(__file__).parent.parent / "README.md").read_text()
EXAMPLES = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "def test_" in b]
INI = re.findall(r"```ini\n(.*?)```", README, re.S)[0]
"""The ini file the README's examples run with."""


NAMES = [re.search(r"def (test_\w+)", code).group(1) for code in EXAMPLES]  # type: ignore[union-attr]


def test_readme_has_the_pytest_examples() -> None:
    assert NAMES == [
        "test_checkout_is_tracked",
        "test_checkout_sends_an_impression",
        "test_sdk_purchase_is_tracked",
        "test_ids_only_impression_and_keyless_conversion",
        "test_own_client",
        "test_a_conversion_of_another_project_is_warned",
        "test_purchases_count_in_the_treatment",
        "test_a_503_is_retried",
    ]
    assert EXAMPLES[0].count("optimizely.Optimizely(sdk_key=") == 1  # the SDK as documented
    assert "logx_event_dispatcher" not in EXAMPLES[0] and "pytest.mark" not in EXAMPLES[0]


@pytest.mark.parametrize("code", EXAMPLES, ids=NAMES)
def test_readme_example_passes(pytester: pytest.Pytester, code: str) -> None:
    shutil.copy(Path(__file__).parent / "helpers.py", pytester.path / "helpers.py")
    shutil.copy(DATAFILE, pytester.path / "datafile.json")
    pytester.makeini(INI + "asyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_example=code)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    "rule", sorted(ERROR_RULES) + sorted(WARNING_RULES) + sorted(DATAFILE_RULES)
)
def test_readme_lists_every_rule(rule: str) -> None:
    assert re.search(rf"^\| [^|\n]*`{rule}`[^|\n]* \|", README, re.M), rule


def test_readme_quick_start_has_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", quick, re.S)
    assert commands[:2] == ["pip install . && logx-mock serve", "bash tests/run.sh"]
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_readme_datafile_examples_are_contract_cases() -> None:
    """Each example row's warning is what the contract case of that rule journals."""
    import json

    cases = json.loads(
        (Path(__file__).parent.parent / "contract_tests/cases/datafile.json").read_text()
    )
    expected_rules = {rule for case in cases for _, rule in case["expect"]["warnings"]}
    section = README.split("### Datafile checks", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `(\w+)`", section, re.M)
    assert set(rows) == expected_rules
    assert set(DATAFILE_RULES) <= expected_rules
