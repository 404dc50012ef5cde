"""The check as a JUnit XML report: one test case per request, a `<failure>` for each
request that fails, carrying every violation with its path.

CI systems (GitHub Actions reporters, GitLab, Jenkins, Azure) read this format and show
each failed request as a failed test. The file is written in one pass over the journal:
the cases go to a temporary file while they are counted, then the report is put
together (the counts come first in the XML), so memory stays flat whatever the size.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import IO
from xml.sax.saxutils import escape, quoteattr

from ..model import RequestRecord
from .check import Failure, case_name, client_of

__all__ = ["JUnitWriter"]

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot hold (control characters, lone surrogates)."""
_SUITE = "logx-mock check"


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", value))


def _attr(value: str) -> str:
    return quoteattr(_NOT_XML.sub("\ufffd", value))


class JUnitWriter:
    """Collects test cases, then writes the report to `path` (via `path.part`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cases: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.tests = 0
        self.failures = 0
        self._started = datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return f"<JUnitWriter {str(self.path)!r} tests={self.tests} failures={self.failures}>"

    def add(self, record: RequestRecord, failure: Failure | None) -> None:
        """One test case for `record`, failed when `failure` is given."""
        self.tests += 1
        classname = "logx-mock." + client_of(record).split(" ")[0]
        head = (
            f'    <testcase classname={_attr(classname)} name={_attr(case_name(record))} time="0"'
        )
        if failure is None:
            self._cases.write(head + "/>\n")
            return
        self.failures += 1
        body = _text("\n".join(failure.lines()))
        self._cases.write(
            f"{head}>\n      <failure type={_attr(failure.reasons[0])} "
            f"message={_attr(failure.message)}>{body}</failure>\n    </testcase>\n"
        )

    def write(self) -> None:
        """Put the report together at `path` (written whole or not at all)."""
        partial = self.path.with_name(self.path.name + ".part")
        stamp = self._started.isoformat(timespec="seconds")
        counts = f'tests="{self.tests}" failures="{self.failures}" errors="0" skipped="0"'
        try:
            with partial.open("w", encoding="utf-8") as out:
                out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
                out.write(f"<testsuites name={_attr(_SUITE)} {counts}>\n")
                out.write(
                    f'  <testsuite name={_attr(_SUITE)} {counts} time="0" timestamp="{stamp}">\n'
                )
                self._cases.seek(0)
                shutil.copyfileobj(self._cases, out)
                out.write("  </testsuite>\n</testsuites>\n")
            partial.replace(self.path)
        finally:
            partial.unlink(missing_ok=True)
            self.close()

    def close(self) -> None:
        self._cases.close()
