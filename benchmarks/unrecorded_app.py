"""logx-mock with recording off: the whole judgement (decode, validate, anonymize,
flatten, the answer), a journal that keeps nothing. The anchor load-test tools publish
(they do not record either), so a user can size a load test. Benchmarks only:
`python benchmarks/unrecorded_app.py PORT`.
"""

from __future__ import annotations

import sys

from mockserver import Endpoint, MemoryJournal, RequestRecord
from mockserver.serve.server import ReadyServer, bind_socket, uvicorn_config
from mockserver.web.app import create_app


class DiscardJournal(MemoryJournal):
    """Gives each request an id and forgets it (every way in commits through `_store`)."""

    def _store(self, record: RequestRecord) -> RequestRecord:
        record.set_id(self._next_id)
        self._next_id += 1
        return record


if __name__ == "__main__":
    sock = bind_socket("127.0.0.1", int(sys.argv[1]))
    print(f"logx-mock, recording off, on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    app = create_app(Endpoint(DiscardJournal()))
    ReadyServer(uvicorn_config(app)).run(sockets=[sock])
