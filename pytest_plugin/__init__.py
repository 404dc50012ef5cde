"""The logx-mock pytest plugin (the `logx_mock` pytest11 entry point).

The fixtures live in `pytest_plugin.plugin`; this package exports the classes a
test may want to name in type hints or use outside fixtures.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("pytest_plugin.handle", "pytest_plugin.matching")

from .dispatcher import LogxEventDispatcher  # noqa: E402
from .handle import Attempt, DatafileWarning, LogxHandle, ServerHandle  # noqa: E402
from .leak_guard import LeakError, leak_guard  # noqa: E402
from .matching import Mismatch  # noqa: E402
from .options import LogxOptions  # noqa: E402
from .requests_routes import add_logx_routes, logx_requests  # noqa: E402
from .routes import LOGX_HOSTS, OPTIMIZELY_HOSTS, logx_router  # noqa: E402
from .transport import LogxTransport  # noqa: E402

__all__ = [
    "LOGX_HOSTS",
    "OPTIMIZELY_HOSTS",
    "Attempt",
    "DatafileWarning",
    "LeakError",
    "LogxEventDispatcher",
    "LogxHandle",
    "LogxOptions",
    "LogxTransport",
    "Mismatch",
    "ServerHandle",
    "add_logx_routes",
    "leak_guard",
    "logx_requests",
    "logx_router",
]
