"""Peer: pytest-httpserver answering 204 on POST /v1/events. `python ... PORT`."""

from __future__ import annotations

import sys
import threading

from pytest_httpserver import HTTPServer

if __name__ == "__main__":
    server = HTTPServer(host="127.0.0.1", port=int(sys.argv[1]))
    server.expect_request("/v1/events", method="POST").respond_with_data("", status=204)
    server.start()
    print(f"pytest-httpserver listening on {server.url_for('/')}", flush=True)
    threading.Event().wait()
