"""One exception tree: every error logx-mock raises on purpose is a `LogxMockError`, and the
library's messages name settings in its own terms (the CLI names the flags)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from mockserver import EndpointConfig, MemoryJournal, SqliteJournal, TrustedProxies, errors
from mockserver.errors import ConfigError, JournalError, LogxMockError
from mockserver.serve.server import bind_socket
from mockserver.web.guard import GuardConfig


def test_every_error_is_a_logx_mock_error_and_keeps_its_builtin_base() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), LogxMockError), name
    for name in ("ConfigError", "FaultError", "DurationError", "FaultPlanFull", "DatafileError"):
        assert issubclass(getattr(errors, name), ValueError), name
    assert issubclass(errors.NoTransportError, RuntimeError)


def test_the_docstring_draws_the_whole_tree() -> None:
    drawn = re.findall(r"^\s*(?:[│├└─ ]*)(\w+Error|\w+Full)\b", errors.__doc__ or "", re.M)
    assert sorted(drawn) == sorted(errors.__all__)


def test_config_error_keeps_the_setting_apart_from_the_problem() -> None:
    error = ConfigError("must be at least 1, got 0", setting="max_requests")
    assert str(error) == "max_requests must be at least 1, got 0"
    assert (error.setting, error.problem) == ("max_requests", "must be at least 1, got 0")
    assert str(ConfigError("unknown filter x")) == "unknown filter x"


def test_journal_error_is_its_message_then_its_fix() -> None:
    error = JournalError("cannot open it", cause="open", fix="give another path")
    assert str(error) == "cannot open it; give another path"
    assert (error.message, error.cause, error.fix) == (
        "cannot open it",
        "open",
        "give another path",
    )


def _library_errors(tmp_path: Path) -> list[LogxMockError | OSError]:
    caught: list[LogxMockError | OSError] = []
    attempts = [
        lambda: GuardConfig(token="short"),
        lambda: GuardConfig(token="not a token!"),
        lambda: TrustedProxies.parse(["nope"]),
        lambda: EndpointConfig(body_timeout=0),
        lambda: EndpointConfig(max_body_bytes=0),
        lambda: MemoryJournal(max_requests=0),
        lambda: MemoryJournal().events(limit=0),
        lambda: SqliteJournal(tmp_path / "no-dir" / "j.db"),
    ]
    for attempt in attempts:
        with pytest.raises(LogxMockError) as info:
            attempt()
        caught.append(info.value)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError) as bind_info:
            bind_socket("127.0.0.1", taken.getsockname()[1])
        caught.append(bind_info.value)
    return caught


def test_library_errors_name_no_command_line_flag(tmp_path: Path) -> None:
    found = _library_errors(tmp_path)
    for error in found:
        assert not re.search(r"--[a-z]", str(error)), error
    assert "admin token must be at least 8 characters" in str(found[0])
    assert "pick another port, or 0 for any" in str(found[-1])
