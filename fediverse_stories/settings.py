"""The instance's settings: built once from an environ passed in (plus `.env`), then frozen.

CONTRACT.md fixes the names and defaults of the operator-facing settings; the extra ones below
(timeouts, leases, rate limits) exist so tests and benchmarks can shorten them.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from starlette.config import Config

PREFIX = "FEDIVERSE_STORIES_"

# Hosts that can never be a production instance, where an http:// base URL is fine.
DEVELOPMENT_SUFFIXES = (".localhost", ".test", ".example", ".invalid", ".local")


class SettingsError(Exception):
    """One or more settings are invalid; each problem is one line of the message."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    """Every setting of one instance, validated."""

    base_url: str = "http://localhost:8000"
    data_dir: Path = Path("./data")
    database_url: str = ""
    secret_key: str | None = None
    allow_private_addresses: bool = False
    org_name: str = "Stories"
    org_handle: str = "stories"
    max_body_bytes: int = 1_048_576
    comments_close_after_days: int | None = None
    behind_tls_proxy: bool = False
    signed_fetch_only: bool = False
    login_limit_per_account: int = 10
    login_limit_per_address: int = 30
    login_window_seconds: int = 60
    follow_limit: int = 40
    follow_window_seconds: int = 300
    job_lease_seconds: int = 120
    worker_idle_sleep_seconds: float = 1.0
    # Jobs one worker process runs at once (a fan-out's deliveries; at most 4 for one host).
    worker_jobs: int = 128
    worker_stop_grace_seconds: float = 20.0
    done_jobs_kept_days: int = 7
    processed_activities_kept_days: int = 7
    fetch_timeout_seconds: float = 10.0
    # Processes that make our signatures (signing_pool.py); 0 signs in the process itself.
    signing_processes: int = 0
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def host(self) -> str:
        """The authority of the base URL (host, plus port when it has one): our WebFinger domain."""
        return urlsplit(self.base_url).netloc

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def url(self, path: str) -> str:
        """An absolute URL on this instance."""
        return self.base_url + path

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
    ) -> Settings:
        """Read, check and freeze the settings; raise SettingsError listing every problem."""
        environ = dict(os.environ if environ is None else environ)
        file = Path(env_file) if env_file is not None else None
        config = Config(file if file is not None and file.is_file() else None, environ=environ)
        problems: list[str] = []

        def text(name: str, default: str) -> str:
            return str(config(PREFIX + name, default=default)).strip()

        def integer(name: str, default: int | None, minimum: int = 0) -> int | None:
            raw = text(name, "" if default is None else str(default))
            if raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name}={raw!r} is not a whole number")
                return default
            if value < minimum:
                problems.append(f"{PREFIX}{name}={value} must be at least {minimum}")
                return default
            return value

        def number(name: str, default: float) -> float:
            raw = text(name, str(default))
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{PREFIX}{name}={raw!r} is not a number")
                return default
            if value <= 0:
                problems.append(f"{PREFIX}{name}={raw} must be positive")
                return default
            return value

        def flag(name: str) -> bool:
            raw = text(name, "").lower()
            if raw in ("", "0", "false", "no", "off"):
                return False
            if raw in ("1", "true", "yes", "on"):
                return True
            problems.append(f"{PREFIX}{name}={raw!r} must be 1 or 0")
            return False

        behind_tls_proxy = flag("BEHIND_TLS_PROXY")
        base_url = _check_base_url(text("BASE_URL", cls.base_url), behind_tls_proxy, problems)
        data_dir = Path(text("DATA_DIR", "./data") or "./data")
        database_url = text("DATABASE_URL", "") or f"sqlite+aiosqlite:///{data_dir / 'stories.db'}"
        if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            problems.append(
                f"{PREFIX}DATABASE_URL must start with sqlite+aiosqlite:// or "
                f"postgresql+asyncpg:// (got {database_url.split(':', 1)[0]}://...)"
            )
        handle = text("ORG_HANDLE", cls.org_handle)
        if not _is_username(handle):
            problems.append(f"{PREFIX}ORG_HANDLE={handle!r} must be 1-30 of a-z, 0-9 and _")
        secret = text("SECRET_KEY", "") or None
        if secret is not None and len(secret) < 16:
            problems.append(f"{PREFIX}SECRET_KEY must be at least 16 characters")

        cores = default_signing_processes()
        settings = cls(
            base_url=base_url,
            data_dir=data_dir,
            database_url=database_url,
            secret_key=secret,
            allow_private_addresses=flag("ALLOW_PRIVATE_ADDRESSES"),
            org_name=text("ORG_NAME", cls.org_name) or cls.org_name,
            org_handle=handle,
            max_body_bytes=integer("MAX_BODY_BYTES", cls.max_body_bytes, 1024)
            or cls.max_body_bytes,
            comments_close_after_days=integer("COMMENTS_CLOSE_AFTER_DAYS", None, 1),
            behind_tls_proxy=behind_tls_proxy,
            signed_fetch_only=flag("SIGNED_FETCH_ONLY"),
            login_limit_per_account=integer("LOGIN_LIMIT_PER_ACCOUNT", 10, 1) or 10,
            login_limit_per_address=integer("LOGIN_LIMIT_PER_ADDRESS", 30, 1) or 30,
            login_window_seconds=integer("LOGIN_WINDOW_SECONDS", 60, 1) or 60,
            follow_limit=integer("FOLLOW_LIMIT", 40, 1) or 40,
            follow_window_seconds=integer("FOLLOW_WINDOW_SECONDS", 300, 1) or 300,
            job_lease_seconds=integer("JOB_LEASE_SECONDS", 120, 1) or 120,
            worker_idle_sleep_seconds=number("WORKER_IDLE_SLEEP_SECONDS", 1.0),
            worker_jobs=integer("WORKER_JOBS", cls.worker_jobs, 1) or cls.worker_jobs,
            worker_stop_grace_seconds=number("WORKER_STOP_GRACE_SECONDS", 20.0),
            done_jobs_kept_days=integer("DONE_JOBS_KEPT_DAYS", 7, 1) or 7,
            processed_activities_kept_days=integer("PROCESSED_ACTIVITIES_KEPT_DAYS", 7, 1) or 7,
            fetch_timeout_seconds=number("FETCH_TIMEOUT_SECONDS", 10.0),
            signing_processes=_or_default(integer("SIGNING_PROCESSES", cores), cores),
            extra={k: v for k, v in environ.items() if k.startswith(PREFIX)},
        )
        if problems:
            raise SettingsError(problems)
        return settings


def default_signing_processes() -> int:
    """One signing process per core this process may run on; none on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return cores if cores and cores > 1 else 0


def _or_default(value: int | None, default: int) -> int:
    return default if value is None else value


USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def _is_username(name: str) -> bool:
    return 0 < len(name) <= 30 and set(name) <= USERNAME_CHARS


def is_development_host(hostname: str) -> bool:
    """True for hosts that cannot be a public production instance (loopback, reserved TLDs)."""
    hostname = hostname.lower().rstrip(".")
    if hostname == "localhost" or hostname.endswith(DEVELOPMENT_SUFFIXES):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _check_base_url(raw: str, behind_tls_proxy: bool, problems: list[str]) -> str:
    name = PREFIX + "BASE_URL"
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{name}={raw!r} must be an origin such as https://stories.example.org")
        return raw
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        problems.append(f"{name}={raw!r} must be an origin only: scheme, host and optional port")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        problems.append(f"{name}={raw!r} has an invalid port")
    scheme = parts.scheme
    if scheme == "http" and not is_development_host(parts.hostname):
        if behind_tls_proxy:
            scheme = "https"  # the proxy terminates TLS: public ids are still https
        else:
            problems.append(
                f"{name}={raw!r}: production needs an https:// base URL (http:// is for "
                f"localhost and *.test hosts, or set {PREFIX}BEHIND_TLS_PROXY=1)"
            )
    return f"{scheme}://{parts.netloc.lower()}"
