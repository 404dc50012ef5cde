"""`serve --datafile FILE` follows FILE: a changed datafile is read again, no restart needed.

Developers refresh a local datafile as their project changes; the checks should follow.
A file is looked at once a second (a `stat`; it is read again only when its size or
modification time changed). A file that cannot be read or parsed any more (half
written, deleted) is reported once, and the previous version stays in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from ..contract.datafile import Datafile, DatafileError, Datafiles
from ..endpoint import Endpoint

__all__ = ["watch_datafiles"]

log = logging.getLogger("logx_mock")


def watch_datafiles(
    endpoint: Endpoint, paths: Sequence[str | Path], *, interval: float = 1.0
) -> threading.Event:
    """Re-read `paths` every `interval` seconds in a daemon thread; a changed file replaces
    its previous version in `endpoint`'s datafiles. Set the returned event to stop."""
    stop = threading.Event()
    loaded = {str(path): Datafile.load(path) for path in paths}  # what the endpoint holds now
    broken: set[str] = set()

    def replace(old: Datafile, new: Datafile) -> None:
        was = (old.source, old.project_id, old.revision)

        def swap(current: Datafiles) -> Datafiles:
            kept = [f for f in current.files if (f.source, f.project_id, f.revision) != was]
            return Datafiles(tuple(kept)).added(new)

        endpoint.change_datafiles(swap)

    def look() -> None:
        for path, old in loaded.items():
            try:
                new = Datafile.load(path)
            except DatafileError as exc:
                if path not in broken:
                    log.error("%s; still checking against its previous version", exc)
                    broken.add(path)
                continue
            broken.discard(path)
            if new is not old:
                replace(old, new)
                loaded[path] = new
                log.info(
                    "datafile %s changed: now project %s, revision %s",
                    path,
                    new.project_id,
                    new.revision,
                )

    def loop() -> None:
        while not stop.wait(interval):
            look()

    threading.Thread(target=loop, name="logx-mock-datafile-watch", daemon=True).start()
    return stop
