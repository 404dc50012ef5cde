"""The floor: a bare Starlette endpoint that only reads the body and answers 204.

No validation, no recording: the ceiling for any Starlette server on the same
uvicorn settings. Run as `python benchmarks/floor_app.py PORT`.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mockserver.serve.server import _ReadyServer, bind_socket, uvicorn_config


async def events(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])])

if __name__ == "__main__":
    sock = bind_socket("127.0.0.1", int(sys.argv[1]))
    print(f"floor listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    _ReadyServer(uvicorn_config(app)).run(sockets=[sock])  # type: ignore[arg-type]
