"""The floor: a bare Starlette endpoint that only reads the body and answers 204.

No validation, no recording: the ceiling for any Starlette server. Run as
`python benchmarks/floor_app.py PORT [httptools|h11]`: httptools + uvloop (what
`uvicorn[standard]` gives, and what `logx-mock serve` runs on) by default; `h11`
for the pure-Python parser on asyncio's own loop, the second reference line.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def events(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


app = Starlette(routes=[Route("/v1/events", events, methods=["POST"])])

if __name__ == "__main__":
    http = sys.argv[2] if len(sys.argv) > 2 else "httptools"
    loop = "uvloop" if http == "httptools" else "asyncio"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen(2048)
    print(f"floor ({http}, {loop}) on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, http=http, loop=loop, access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])
