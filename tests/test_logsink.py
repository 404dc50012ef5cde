"""The background log handler `serve` uses: lines come out whole and in order, `flush`
waits for them, and it keeps working after logging.config closes every handler (uvicorn
calls dictConfig at startup)."""

from __future__ import annotations

import io
import logging
import logging.config
import re
import signal
from typing import Any

import requests
from helpers import impression

from mockserver.request_lines import LINES_PER_SECOND
from mockserver.serve.logsink import BackgroundHandler


def _logger(name: str, stream: io.StringIO) -> tuple[logging.Logger, BackgroundHandler]:
    handler = BackgroundHandler(stream, logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, handler


class _Lazy:
    def __init__(self) -> None:
        self.calls = 0

    def __str__(self) -> str:
        self.calls += 1
        return "built late"


def test_lines_are_written_in_order_once_flushed() -> None:
    stream = io.StringIO()
    logger, handler = _logger("logx_test_order", stream)
    for i in range(2000):
        logger.info("#%d accepted", i)
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert lines == [f"INFO #{i} accepted" for i in range(2000)]
    logger.removeHandler(handler)


def test_message_is_formatted_on_the_writer_thread_once() -> None:
    stream = io.StringIO()
    logger, handler = _logger("logx_test_lazy", stream)
    lazy = _Lazy()
    logger.info("%s", lazy)
    handler.flush()
    assert stream.getvalue() == "INFO built late\n"
    assert lazy.calls == 1
    logger.removeHandler(handler)


def test_keeps_writing_after_dict_config_closes_handlers() -> None:
    stream = io.StringIO()
    logger, handler = _logger("logx_test_dictconfig", stream)
    logger.info("before")
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    logger.info("after")
    handler.flush()
    assert stream.getvalue().splitlines() == ["INFO before", "INFO after"]
    logger.removeHandler(handler)


def test_a_record_that_cannot_be_formatted_is_reported_not_fatal() -> None:
    stream = io.StringIO()
    logger, handler = _logger("logx_test_broken", stream)
    logger.info("%d", "not a number")
    logger.info("still here")
    handler.flush()
    assert stream.getvalue() == "INFO still here\n"
    logger.removeHandler(handler)


def test_serve_sums_up_request_lines_under_load(serve: Any) -> None:
    server = serve("--memory")
    total = LINES_PER_SECOND * 4
    with requests.Session() as session:
        for _ in range(total):
            assert session.post(server.events_url, json=impression(), timeout=10).status_code == 204
    code, log = server.stop(signal.SIGTERM)
    assert code == 0
    shown = re.findall(r"#\d+ 204 accepted", log)
    held = [int(n.replace(",", "")) for n in re.findall(r"and ([\d,]+) more request", log)]
    assert held, log  # 200 requests in a few seconds: some second had more than 50
    assert len(shown) + sum(held) == total
    assert "accepted): one line each is shown for the first 50 a second" in log


def test_serve_writes_every_request_line_before_sigterm_ends_it(serve: Any) -> None:
    server = serve("--memory")
    for _ in range(3):
        assert requests.post(server.events_url, json=impression(), timeout=10).status_code == 204
    code, log = server.stop(signal.SIGTERM)
    assert code == 0  # SIGTERM ends serve as Ctrl-C does (tests/test_shutdown.py)
    assert [f"#{i} 204 accepted" in log for i in (1, 2, 3)] == [True, True, True]
    assert log.splitlines()[-1] == (
        "logx-mock stopped; every acknowledged request is in the journal"
    )  # after every request line
