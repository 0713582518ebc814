"""The interop suite's one fixture: the scenario, run once per session in a network namespace.

tests/interop/run_scenario.py starts our instance (the real CLI), bovine-herd and
fediverse-pasture inside `unshare --net --mount --pid` (loopback only, a private /etc/hosts)
and prints what happened as JSON; the tests here assert on that JSON.

Without what it needs (root, `unshare`, .venv-interop from `make interop-venv`, the JSON-LD
contexts of tests/fixtures) the suite is skipped, with the reason; with
FEDIVERSE_STORIES_REQUIRE_INTEROP=1 (CI) it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEER_PYTHON = ROOT / ".venv-interop" / "bin" / "python"
LD_CONTEXTS = Path(
    os.environ.get(
        "FEDIVERSE_STORIES_LD_CONTEXTS", ROOT / "tests" / "fixtures" / "ld_contexts.json"
    )
)
SCENARIO_TIMEOUT_SECONDS = 280


def _missing() -> str | None:
    if os.environ.get("FEDIVERSE_STORIES_TEST_BACKEND", "sqlite") != "sqlite":
        return None  # handled by _other_backend
    if not PEER_PYTHON.exists():
        return f"{PEER_PYTHON} is missing: run `make interop-venv`"
    if not LD_CONTEXTS.exists():
        return f"{LD_CONTEXTS} is missing (the peers' JSON-LD contexts)"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "`unshare` and `mount` (util-linux) are needed for the network namespace"
    if os.geteuid() != 0:
        return "the network namespace needs root (unshare --net)"
    return None


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if os.environ.get("FEDIVERSE_STORIES_TEST_BACKEND", "sqlite") != "sqlite":
        # Our instance in the scenario always runs on its own SQLite file: one run is enough.
        pytest.skip("the interop suite runs in the SQLite pass only")
    reason = _missing()
    if reason is not None:
        if os.environ.get("FEDIVERSE_STORIES_REQUIRE_INTEROP") == "1":
            pytest.fail(f"interop suite required but cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("interop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
    env["FEDIVERSE_STORIES_LD_CONTEXTS"] = str(LD_CONTEXTS)
    command = [
        "unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--",
        sys.executable, str(HERE / "run_scenario.py"), str(workdir),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SCENARIO_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the scenario took over {SCENARIO_TIMEOUT_SECONDS} s: {error.stderr!r}")
    (workdir / "scenario.stderr").write_text(done.stderr, encoding="utf-8")
    (workdir / "results.json").write_text(done.stdout, encoding="utf-8")
    try:
        results: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"the scenario printed no JSON (exit {done.returncode}): {done.stderr[-3000:]}")
    if "error" in results:
        pytest.fail(f"the scenario failed: {results['error']}\n{results.get('traceback', '')}")
    results["workdir"] = str(workdir)
    yield results
