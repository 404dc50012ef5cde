"""Where `serve` and `events` take the admin token from, and what other users can see of it.

A command line is world-readable (`ps`, /proc/PID/cmdline): `--admin-token TOKEN` shows
the token to every local user, so it is still accepted but warned about. The token file
(`--admin-token-file`) and the environment variable (`LOGX_MOCK_ADMIN_TOKEN`: a process's
environment is readable only by its own user and root) keep it out of sight.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["TOKEN_ENV", "admin_token"]

TOKEN_ENV = "LOGX_MOCK_ADMIN_TOKEN"


def admin_token(
    flag: str | None, file: str | None, environ: Mapping[str, str]
) -> tuple[str | None, list[str]]:
    """The token from `--admin-token`, `--admin-token-file` or `LOGX_MOCK_ADMIN_TOKEN` (in
    that order; both flags at once is an error), and warnings for the person starting it.

    Raises ValueError naming the problem (an unreadable or empty file)."""
    if flag is not None and file is not None:
        raise ValueError("give the admin token once: --admin-token or --admin-token-file")
    if flag is not None:
        return flag, [
            "--admin-token is visible to every local user in `ps`; prefer "
            f"--admin-token-file FILE or the {TOKEN_ENV} environment variable"
        ]
    if file is not None:
        return _from_file(Path(file).expanduser())
    return environ.get(TOKEN_ENV) or None, []


def _from_file(path: Path) -> tuple[str, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read --admin-token-file {str(path)!r}: {exc}") from None
    token = text.strip()
    if not token:
        raise ValueError(f"--admin-token-file {str(path)!r} is empty; write the token in it")
    warnings = []
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"--admin-token-file {str(path)!r} is readable by other users; chmod 600 it"
        )
    return token, warnings
