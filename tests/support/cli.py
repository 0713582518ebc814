"""The `fediverse-stories` command run as operators and scripts run it: a real process, no
terminal, one line on stderr when it fails."""

from __future__ import annotations

import os
import subprocess

from tests.support.servers import COMMAND


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`fediverse-stories ARGS...` with exactly these settings (none from our environment)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
    full_env.update(env)
    return subprocess.run(
        [COMMAND, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Non-zero exit and a single `fediverse-stories: ...` line holding every fragment."""
    assert result.returncode != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fediverse-stories: ")
    for fragment in fragments:
        assert fragment in lines[0]
