"""`logx-mock serve --workers N`: N uvicorn worker processes sharing one SQLite journal.

The parent binds the socket and hands it to uvicorn's process supervisor; each
worker builds its own app from the settings the parent put in the environment
(`LOGX_MOCK_WORKER`), read when the worker starts, never at import time. The
journal is the only shared state: SQLite serializes the writers, ids come from
one sequence, and each worker watches the file so long-polls and the page see
what any worker recorded. The fault plan is in the file too: the parent sets it
from `--fault`/`--faults-file` once, and `/_mock/faults` on any worker changes it
for all.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from uvicorn.supervisors.multiprocess import Multiprocess

from ..anonymize import TrustedProxies
from ..contract.datafile import Datafiles
from ..endpoint import Endpoint, EndpointConfig
from ..journal.sqlite import SqliteJournal
from ..web.app import LogxApp, create_app
from ..web.guard import GuardConfig
from ..web.protocol import ServerLimits
from .admin_token import TOKEN_ENV
from .cli import log_to_stderr
from .server import uvicorn_config
from .watch import watch_datafiles

__all__ = ["ENV", "app_from_env", "run_workers"]

ENV = "LOGX_MOCK_WORKER"


def app_from_env() -> LogxApp:
    """The app factory each worker process calls (uvicorn `factory=True`)."""
    settings: dict[str, Any] = json.loads(os.environ[ENV])
    log_to_stderr()
    journal = SqliteJournal(settings["db"], max_requests=settings["max_requests"], shared=True)
    config = EndpointConfig(
        trusted_proxies=TrustedProxies.parse(settings["trust_proxy"]),
        body_timeout=settings["body_timeout"],
        datafiles=Datafiles.load(settings.get("datafiles", [])),
    )
    endpoint = Endpoint(journal, config=config)  # the plan is in the file: the parent set it
    if settings.get("datafiles"):
        watch_datafiles(endpoint, settings["datafiles"])
    guard = GuardConfig(
        token_sha256=settings["admin_token_sha256"],
        allowed_hosts=frozenset(settings["allowed_hosts"]),
    )
    return create_app(endpoint, close_journal=True, guard=guard)


def run_workers(
    sock: socket.socket, workers: int, settings: dict[str, Any], limits: ServerLimits
) -> None:
    """Serve `sock` with `workers` processes until interrupted.

    The workers get the settings in their environment, with the admin token only as its
    SHA-256; `LOGX_MOCK_ADMIN_TOKEN` is left out of what they inherit."""
    os.environ[ENV] = json.dumps(settings)
    inherited = os.environ.pop(TOKEN_ENV, None)
    config = uvicorn_config(
        "mockserver.serve.workers:app_from_env",  # type: ignore[arg-type]
        factory=True,
        workers=workers,
        limits=limits,
        **settings.get("tls", {}),
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        if inherited is not None:
            os.environ[TOKEN_ENV] = inherited
