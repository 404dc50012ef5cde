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

import os
import signal
import socket

from uvicorn.supervisors.multiprocess import Multiprocess, Process

from ..web.app import LogxApp
from .admin_token import TOKEN_ENV
from .logsink import log_to_stderr
from .server import freeze_startup_heap, listening_twin, uvicorn_config
from .settings import ServeSettings

__all__ = ["ENV", "app_from_env", "run_workers"]

ENV = "LOGX_MOCK_WORKER"


def app_from_env() -> LogxApp:
    """The app factory each worker process calls (uvicorn `factory=True`)."""
    settings = ServeSettings.from_json(os.environ[ENV])
    log_to_stderr()
    app = settings.build_app(shared=True)
    freeze_startup_heap()
    return app


def run_workers(sock: socket.socket, settings: ServeSettings) -> None:
    """Serve `sock` with `settings.workers` processes until interrupted.

    The workers get the settings in their environment (with the admin token only as its
    SHA-256); `LOGX_MOCK_ADMIN_TOKEN` is left out of what they inherit."""
    os.environ[ENV] = settings.resolved().to_json()
    inherited = os.environ.pop(TOKEN_ENV, None)
    config = uvicorn_config(
        "mockserver.serve.workers:app_from_env",  # type: ignore[arg-type]
        factory=True,
        workers=settings.workers,
        limits=settings.limits,
        **settings.certificate,
    )
    # One listening socket per worker (the kernel spreads connections over them); a worker
    # started again, after one died, serves all of them (no socket is left without one).
    own = [sock] + [listening_twin(sock) for _ in range(settings.workers - 1)]
    try:
        _Supervisor(config, own).run()
    finally:
        for twin in own[1:]:
            twin.close()
        if inherited is not None:
            os.environ[TOKEN_ENV] = inherited


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, starting each worker on a listening socket of its own, with
    SIGINT ignored.

    On one shared socket, the worker whose loop wakes first accepts every connection waiting
    (uvloop accepts until none is left): wrk's 32 connections were split 32/0, 23/9, 20/12
    between two workers, and the busier one set the pace. With a socket each (`SO_REUSEPORT`)
    the kernel spreads them by a hash of their addresses. uvicorn starts a worker again (one
    died or hung, or on SIGHUP) on `sockets`, which is all of them.

    A terminal's Ctrl-C goes to the whole process group: a worker still starting (a
    loaded machine starts them slowly; `/_mock/health` answers as soon as one is up)
    would die in the middle of an import with a `KeyboardInterrupt` traceback. A worker
    that ignores SIGINT while it starts stops on the SIGTERM the supervisor sends each
    (uvicorn's own handlers, installed once it serves, take Ctrl-C gracefully too). The
    supervisor ignores SIGINT only while it starts them (a Ctrl-C in those milliseconds
    is lost: press it again). A worker uvicorn starts later, to replace one that died
    or hung, is started as uvicorn starts it."""

    def init_processes(self) -> None:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited through exec
        try:
            for sock in self.sockets:
                process = Process(self.config, [sock])
                process.start()
                self.processes.append(process)
        finally:
            signal.signal(signal.SIGINT, handler)
