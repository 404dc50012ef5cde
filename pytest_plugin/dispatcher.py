"""An event dispatcher for the Optimizely Python SDK that delivers to logx-mock.

It hands each log event to the SDK's own default `EventDispatcher` (requests,
its retry policy and timeout) with only the URL changed, so the bytes on the
wire are exactly what the SDK would send to logx.optimizely.com.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LogxEventDispatcher"]


class LogxEventDispatcher:
    """`optimizely.Optimizely(datafile, event_dispatcher=LogxEventDispatcher(url))`."""

    def __init__(self, events_url: str) -> None:
        try:
            from optimizely.event_dispatcher import EventDispatcher
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "the Optimizely SDK is not installed: pip install 'logx-mock[optimizely]'"
            ) from exc
        self.events_url = events_url
        self._default = EventDispatcher
        self.dispatched: list[str] = []
        """The original URL of every event dispatched (US or EU host)."""

    def __repr__(self) -> str:
        return f"<LogxEventDispatcher to {self.events_url}>"

    def dispatch_event(self, event: Any) -> None:
        """Send `event` to the mock exactly as the SDK's default dispatcher would."""
        from optimizely.event_builder import Event

        self.dispatched.append(event.url)
        redirected = Event(self.events_url, event.params, event.http_verb, event.headers)
        self._default.dispatch_event(redirected)
