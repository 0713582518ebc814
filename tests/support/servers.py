"""Real `fediverse-stories serve` processes on loopback, for end-to-end and browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

COMMAND = str(Path(sys.executable).with_name("fediverse-stories"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(env: dict[str, str], port: int, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run `fediverse-stories serve` until /healthz answers; stop it (SIGTERM) afterwards."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
    full_env.update(env)
    process = subprocess.Popen(
        [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not become healthy in 30 s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
