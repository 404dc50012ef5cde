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


def test_readme_says_where_the_examples_datafile_is_and_what_it_holds() -> None:
    import json

    root = Path(__file__).parent.parent
    section = README.split("### 2. pytest fixtures", 1)[1]
    path = DATAFILE.relative_to(root).as_posix()
    told = re.search(
        rf"`{re.escape(path)}` \(`sdkKey` `([\w-]+)`, flag\s+`(\w+)`, "
        rf"experiment `(\w+)`, events `(\w+)` and `(\w+)`\)",
        section,
    )
    assert told is not None, path
    datafile = json.loads(DATAFILE.read_text())
    key, flag, experiment, *events = told.groups()
    assert key == datafile["sdkKey"] and f'sdk_key="{key}"' in EXAMPLES[0]
    assert flag in [f["key"] for f in datafile["featureFlags"]]
    assert experiment in [e["key"] for e in datafile["experiments"]]
    assert set(events) <= {e["key"] for e in datafile["events"]}


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


def _section(title: str) -> str:
    return README.split(f"### {title}", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]


def _run_ci_recipe(tmp_path: Path, batches: list[bytes]) -> tuple[int, str]:
    """The README's three-command CI job, as written (on a free port), with curl as the
    app's tests; returns check's exit status and the JUnit report."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    (recipe,) = re.findall(r"```sh\n(.*?)```", _section("A CI job in any language"), re.S)
    tmp_path.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    health = f"http://127.0.0.1:{port}/_mock/health"
    sends = []
    for n, batch in enumerate(batches):
        (tmp_path / f"batch{n}.json").write_bytes(batch)
        sends.append(
            f"curl -s -o /dev/null -H 'content-type: application/json' "
            f"--data-binary @batch{n}.json http://127.0.0.1:{port}/v1/events"
        )
    tests = tmp_path / "run-e2e-tests.sh"
    tests.write_text(
        "#!/bin/sh\nset -e\n"
        f"until curl -sf {health} >/dev/null; do sleep 0.1; done\n" + "\n".join(sends) + "\n"
    )
    tests.chmod(0o755)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with subprocess.Popen(
        ["bash", "-c", recipe.replace("8080", str(port))],
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    ) as job:
        try:
            code = job.wait(timeout=120)
        finally:
            os.killpg(job.pid, signal.SIGTERM)  # the background server, as a CI runner would
    return code, (tmp_path / "logx-mock.xml").read_text()


def test_readme_ci_recipe_passes_and_fails_a_job_without_python(tmp_path: Path) -> None:
    import json

    from helpers import impression

    good = json.dumps(impression("ci-visitor")).encode()
    code, report = _run_ci_recipe(tmp_path / "pass", [good])
    assert code == 0 and 'tests="1" failures="0"' in report
    bad = json.dumps({**impression("ci-visitor"), "account_id": 5}).encode()
    code, report = _run_ci_recipe(tmp_path / "fail", [good, bad])
    assert code == 1 and 'tests="2" failures="1"' in report
    assert "account_id: 'account_id' must be a string, got integer [type]</failure>" in report


def test_readme_github_actions_recipe_runs_real_commands() -> None:
    """The workflow is not run here (no GitHub), but it parses, keeps its steps in the
    recipe's order, and every logx-mock command in it is one the command line accepts."""
    import shlex

    import yaml

    from mockserver.serve.cli import build_parser

    (workflow,) = re.findall(r"```yaml\n(.*?)```", _section("GitHub Actions"), re.S)
    steps = yaml.safe_load(workflow)["jobs"]["e2e"]["steps"]
    commands = [
        line.strip().removeprefix("nohup ").split(" > ")[0].removesuffix(" &")
        for step in steps
        for line in step.get("run", "").splitlines()
        if "logx-mock " in line and not line.strip().startswith("pip ")
    ]
    assert [shlex.split(c)[1] for c in commands] == ["serve", "check", "export"]
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "logx-mock"
        build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    reports = [s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report")]
    assert reports[0]["with"]["report_paths"] == "logx-mock.xml"


def test_readme_lists_every_event_filter_with_what_it_matches() -> None:
    from mockserver.journal.filters import EVENT_FILTERS, FILTER_HELP

    for name in EVENT_FILTERS:
        assert f"| `{name}` | {FILTER_HELP[name]} |" in README, name
        assert f"--{name.replace('_', '-')} " in README, name  # in the command line's synopsis


def test_readme_compose_recipe_is_two_instances_on_one_database_behind_a_balancer() -> None:
    """Not run here (no Docker), but it parses, its command is one `serve` accepts, both
    instances name the database service with its user, password and database, and the
    balancer's upstream names both instances on their port."""
    import shlex
    from urllib.parse import urlsplit

    import yaml

    from mockserver.journal.opening import is_postgres_url
    from mockserver.serve.cli import build_parser

    section = _section("Two instances behind a load balancer")
    (recipe,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    compose = yaml.safe_load(recipe)
    services = compose["services"]
    assert set(services) == {"db", "mock-1", "mock-2", "lb"}
    db = services["db"]["environment"]
    mocks = [services["mock-1"], services["mock-2"]]
    assert mocks[0] == mocks[1]
    argv = shlex.split(mocks[0]["command"])
    args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    assert argv[0] == "logx-mock" and args.command == "serve" and args.host == "0.0.0.0"
    url = mocks[0]["environment"]["LOGX_MOCK_DB"]
    parts = urlsplit(url)
    assert is_postgres_url(url) and parts.hostname == "db" and parts.port == 5432
    assert (parts.username, parts.password, parts.path) == (
        db["POSTGRES_USER"],
        db["POSTGRES_PASSWORD"],
        "/" + db["POSTGRES_DB"],
    )
    assert mocks[0]["environment"]["LOGX_MOCK_ADMIN_TOKEN"]  # --host 0.0.0.0 needs one
    nginx = compose["configs"]["lb"]["content"]
    upstream = re.search(r"upstream (\w+) \{(.*?)\}", nginx, re.S)
    assert upstream is not None and f"proxy_pass http://{upstream.group(1)};" in nginx
    servers = re.findall(r"server ([\w-]+):(\d+);", upstream.group(2))
    assert servers == [("mock-1", str(args.port)), ("mock-2", str(args.port))]
    assert "$$http_host" in nginx  # compose's escape for nginx's $http_host
