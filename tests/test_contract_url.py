"""`pytest contract_tests --logx-url URL` passes against a `logx-mock serve` started by hand."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent


def test_contract_suite_against_a_running_server(serve: Any) -> None:
    server = serve("--memory")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "contract_tests",
            "--logx-url",
            server.events_url,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 200
    assert "failed" not in summary
    assert "reads the journal, which an endpoint given by --logx-url does not expose" in (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "contract_tests",
                "--logx-url",
                server.events_url,
                "-q",
                "-rs",
                "-p",
                "no:cacheprovider",
                "-k",
                "journal and python-sdk-impression",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
    )
