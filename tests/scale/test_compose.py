"""docker-compose.yml, checked without Docker (it does not run on the development machines).

Every app service's command must be a real `fediverse-stories` command accepted by our own
parser, with settings (its environment after Compose's interpolation from deploy/env.example,
plus that file as its env_file) that `Settings.from_environ` accepts for production; the Caddy
configuration must pass `caddy validate`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fediverse_stories.cli import build_parser
from fediverse_stories.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
CADDYFILE = ROOT / "deploy" / "Caddyfile"

_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        present = name in env and (env[name] != "" or not (operator or "").startswith(":"))
        if present:
            return env[name]
        if operator in ("?", ":?"):
            raise AssertionError(f"${{{name}}} is required: {argument}")
        return argument if operator in ("-", ":-") else ""

    return _VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    env = read_env_file(ENV_EXAMPLE)
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("command", [None])[0] == "fediverse-stories"
    }


def test_every_app_command_is_a_real_command_with_valid_production_settings(
    compose: dict[str, Any],
) -> None:
    services = app_services(compose)
    assert set(services) == {"init", "web", "worker"}
    parser = build_parser()
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form (a list)"
        args = parser.parse_args(command[1:])  # argparse exits (fails the test) on a bad one
        assert args.command == {"init": "init", "web": "serve", "worker": "worker"}[name]

        assert service["env_file"] == ".env"  # deploy/env.example is copied there
        environ = {**read_env_file(ENV_EXAMPLE), **service["environment"]}
        settings = Settings.from_environ(environ, env_file=None)
        assert settings.base_url == "https://stories.example.org"
        assert settings.database_url.startswith("postgresql+asyncpg://stories:")
        assert settings.database_url.endswith("@db:5432/stories")
        assert not settings.allow_private_addresses
        assert "media:/data" in service["volumes"]

    web = services["web"]
    assert web["deploy"]["replicas"] >= 2
    assert web["command"][web["command"].index("--host") + 1] == "0.0.0.0"
    assert "--no-worker" in web["command"]
    assert "/healthz" in " ".join(web["healthcheck"]["test"])
    assert "ports" not in web  # only the proxy is published
    assert services["worker"]["deploy"]["replicas"] >= 1
    grace = float(services["worker"]["environment"]["FEDIVERSE_STORIES_WORKER_STOP_GRACE_SECONDS"])
    assert grace < _seconds(services["worker"]["stop_grace_period"])  # released before SIGKILL
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["init"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_postgresql_keeps_its_data_in_a_volume_and_has_a_health_check(
    compose: dict[str, Any],
) -> None:
    db = compose["services"]["db"]
    assert db["image"].startswith("postgres:")
    assert "db-data:/var/lib/postgresql/data" in db["volumes"]
    assert "db-data" in compose["volumes"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_the_tls_proxy_fronts_the_web_replicas(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("caddy:")
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    assert f"./{CADDYFILE.relative_to(ROOT)}:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert proxy["healthcheck"]["test"]
    caddyfile = CADDYFILE.read_text()
    assert "{$FEDIVERSE_STORIES_DOMAIN}" in caddyfile
    assert re.search(r"name web\s+port 8000", caddyfile)


@pytest.mark.skipif(
    shutil.which("caddy") is None,
    reason="Caddy's own validator is not installed (Debian: apt-get install caddy)",
)
def test_caddy_accepts_the_caddyfile(tmp_path: Path) -> None:
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    command = ["caddy", "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)]
    done = subprocess.run(
        command,
        env={**environ, "FEDIVERSE_STORIES_DOMAIN": "stories.example.org"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Valid configuration" in done.stdout + done.stderr
    # And the validator does catch a broken file (so the check above means something).
    broken = tmp_path / "Caddyfile"
    broken.write_text(CADDYFILE.read_text().replace("lb_policy round_robin", "lb_policy nonsense"))
    done = subprocess.run(
        [*command[:-1], str(broken)],
        env={**environ, "FEDIVERSE_STORIES_DOMAIN": "stories.example.org"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0


def test_the_image_runs_the_command_as_an_unprivileged_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER stories$", dockerfile, re.MULTILINE)
    assert "pip install" in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", ".env", ".git"} <= set(ignored)  # no local secrets in the image


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return float(match.group(1))
