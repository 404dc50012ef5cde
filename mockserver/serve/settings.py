"""`ServeSettings`: everything `logx-mock serve` runs with, built once.

The command line builds it (`serve_cli.settings_from_args`); `serve --workers N` hands it
whole to each worker as JSON (`to_json` / `from_json`), and every process builds its
endpoint and app from it the same way (`build_endpoint`, `build_app`), so nothing is
assembled twice. The admin token itself is never in it: only its SHA-256, which opens
nothing by itself.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..anonymize import TrustedProxies
from ..contract.datafile import Datafiles
from ..endpoint import Endpoint, EndpointConfig
from ..faults import FaultRule
from ..journal.base import Journal
from ..journal.memory import MemoryJournal
from ..journal.opening import is_postgres_url, open_journal, shown_url
from ..web.app import LogxApp, create_app
from ..web.guard import GuardConfig
from ..web.protocol import ServerLimits

__all__ = ["ServeSettings"]


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """How one `serve` runs: where it listens, its journal, its endpoint, its admin guard.

    Keyword-only and checked on construction (the trusted proxies parse, the limits are in
    range); `db=None` is the memory journal.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    db: str | None = None
    """`--db PATH|URL`: a SQLite file or a PostgreSQL URL, as typed (None: in memory)."""
    max_requests: int | None = None
    """The journal's cap (None keeps every request)."""
    trusted_proxies: tuple[str, ...] = ()
    body_timeout: float = 30.0
    faults: tuple[FaultRule, ...] = ()
    datafiles: tuple[str, ...] = ()
    """Datafile paths, followed when they change."""
    admin_token_sha256: str | None = field(default=None, repr=False)
    allowed_hosts: frozenset[str] = frozenset()
    insecure_admin: bool = False
    """The admin API may answer beyond loopback without a token (`--insecure-admin`)."""
    limits: ServerLimits = field(default_factory=ServerLimits)
    workers: int = 1
    tls: bool = False
    """Speak HTTPS with a certificate signed by the logx-mock CA (`--tls`)."""
    proxy_port: int | None = None
    """Also run the forward proxy on this port (`--proxy-port`; 0 for any)."""
    ca_dir: str | None = None
    """The CA's folder (None: `$LOGX_MOCK_HOME`, else ~/.logx-mock)."""
    certificate: dict[str, str] = field(default_factory=dict)
    """uvicorn's `ssl_certfile` and `ssl_keyfile`: this run's leaf, once the CA made it."""

    def __post_init__(self) -> None:
        TrustedProxies.parse(self.trusted_proxies)  # a bad CIDR fails here, not in a worker

    # JSON in and out: what a worker process receives.
    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.update(
            faults=[rule.to_dict() for rule in self.faults],
            allowed_hosts=sorted(self.allowed_hosts),
            limits=dataclasses.asdict(self.limits),
        )
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data: dict[str, Any] = json.loads(text)
        values = {
            **data,
            "trusted_proxies": tuple(data["trusted_proxies"]),
            "faults": tuple(FaultRule.from_dict(rule) for rule in data["faults"]),
            "datafiles": tuple(data["datafiles"]),
            "allowed_hosts": frozenset(data["allowed_hosts"]),
            "limits": ServerLimits(**data["limits"]),
        }
        return cls(**values)

    # Building.
    def open_journal(self, *, shared: bool = False) -> Journal:
        """The journal (`shared`: other processes write the same SQLite file), opened the
        one way every command opens `--db` (`journal.opening.open_journal`)."""
        if self.db is None:
            return MemoryJournal(max_requests=self.max_requests)
        return open_journal(self.db, max_requests=self.max_requests, shared=shared)

    def endpoint_config(self) -> EndpointConfig:
        """The endpoint's configuration (the datafiles are read here)."""
        return EndpointConfig(
            trusted_proxies=TrustedProxies.parse(self.trusted_proxies),
            body_timeout=self.body_timeout,
            datafiles=Datafiles.load(self.datafiles),
        )

    def build_endpoint(
        self,
        journal: Journal | None = None,
        config: EndpointConfig | None = None,
        *,
        set_plan: bool = True,
    ) -> Endpoint:
        """The endpoint over `journal` (or a new one), with the datafiles; `set_plan` puts
        `faults` and the datafiles in the journal (a journal file holds its plan and
        datafiles for every worker: a server starts with those its command line gives, none
        without the flags, not the last run's; a worker leaves them: the parent set them).
        A PostgreSQL database's plan and datafiles are every instance's: an instance
        replaces the plan only when it has `faults`, and adds its datafiles to the set."""
        config = config or self.endpoint_config()
        endpoint = Endpoint(journal or self.open_journal(), config=config)
        if not set_plan:
            return endpoint
        if self.db is None or not is_postgres_url(self.db):
            endpoint.faults.replace(list(self.faults))
            endpoint.use_datafiles(config.datafiles)
            return endpoint
        # A PostgreSQL database is every instance's: an instance replaces the shared plan
        # only when its command line gives one, and adds its datafiles to the shared set.
        if self.faults:
            endpoint.faults.replace(list(self.faults))
        for datafile in config.datafiles.files:
            endpoint.change_datafiles(functools.partial(Datafiles.added, datafile=datafile))
        return endpoint

    def guard(self) -> GuardConfig:
        return GuardConfig(token_sha256=self.admin_token_sha256, allowed_hosts=self.allowed_hosts)

    def build_app(self, endpoint: Endpoint | None = None, *, shared: bool = False) -> LogxApp:
        """The app over `endpoint` (or one built here); its shutdown closes the journal, and
        changed datafiles are read again."""
        if endpoint is None:
            endpoint = self.build_endpoint(self.open_journal(shared=shared), set_plan=not shared)
        if self.datafiles:
            from .watch import watch_datafiles

            watch_datafiles(endpoint, self.datafiles)
        return create_app(endpoint, close_journal=True, guard=self.guard())

    def resolved(self) -> ServeSettings:
        """The same settings with absolute paths, for a process that may not share our cwd."""
        db = self.db
        if db is not None and not is_postgres_url(db):  # a URL is the same anywhere
            db = str(Path(db).resolve())
        return dataclasses.replace(
            self,
            db=db,
            datafiles=tuple(str(Path(p).resolve()) for p in self.datafiles),
        )

    @property
    def journal_shown(self) -> str:
        """Where the journal lives, for the banner."""
        if self.db is None:
            return "memory"
        if is_postgres_url(self.db):
            return shown_url(self.db)  # hides a password
        return str(Path(self.db).resolve())
