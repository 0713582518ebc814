"""What every benchmark shares: the machine, statistics, instances, processes on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMAND = str(BIN / "fediverse-stories")
PY = sys.executable
CORES = os.cpu_count() or 1


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": str(CORES),
        "ram": ram,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(values: Sequence[float], digits: int = 0) -> str:
    """`median (min, max)` of a benchmark's runs."""
    s = stats(values)
    return f"{s['median']:.{digits}f} (min {s['min']:.{digits}f}, max {s['max']:.{digits}f})"


def answers(r: dict[str, Any]) -> str:
    """Every status seen in the timed windows (`r["statuses"]`), summed per side."""
    total: dict[str, dict[str, int]] = {}
    for entry in r["statuses"]:
        for side, statuses in entry.items():
            for status, n in statuses.items():
                total.setdefault(side, {}).setdefault(status, 0)
                total[side][status] += n
    return "; ".join(f"{side} {statuses}" for side, statuses in total.items())


def remote_actor_row(uri: str, now: Any, **columns: Any) -> dict[str, Any]:
    """An `actors` row for a remote Person at `uri` (http://HOST/users/NAME), as fetching its
    document would store it; `columns` override or add (a key, a display name...)."""
    netloc, name = uri.split("/")[2], uri.rsplit("/", 1)[1]
    return {
        "uri": uri,
        "local": False,
        "type": "Person",
        "username": name,
        "domain": netloc,
        "display_name": name,
        "summary": "",
        "inbox_url": f"{uri}/inbox",
        "shared_inbox_url": f"http://{netloc}/inbox",
        "followers_url": f"{uri}/followers",
        "key_id": f"{uri}#main-key",
        "manually_approves_followers": False,
        "hide_followers": False,
        "suspended": False,
        "blocks_us": False,
        "created_at": now,
        "fetched_at": now,
        **columns,
    }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """A process's direct children (a `serve`'s signing processes)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_http(url: str, process: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} in {seconds} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Instance:
    """One fediverse-stories instance on SQLite in `workdir`, served on 127.0.0.1:port."""

    def __init__(self, workdir: Path, name: str, **settings: str) -> None:
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.netloc = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.netloc}"
        self.db_path = self.dir / "stories.db"
        self.env = {
            "FEDIVERSE_STORIES_BASE_URL": self.base_url,
            "FEDIVERSE_STORIES_DATA_DIR": str(self.dir),
            "FEDIVERSE_STORIES_DATABASE_URL": f"sqlite+aiosqlite:///{self.db_path}",
            "FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES": "1",
            "FEDIVERSE_STORIES_SECRET_KEY": "bench-secret-key-bench-secret-key",
            **{f"FEDIVERSE_STORIES_{k.upper()}": v for k, v in settings.items()},
        }

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
        env.update(self.env)
        return env

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [COMMAND, *args],
            env=self.environ(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.dir,
        )
        if done.returncode != 0:
            raise RuntimeError(f"fediverse-stories {' '.join(args)}: {done.stderr}")
        return done.stdout

    def init(self, author: str = "writer") -> None:
        self.cli("init")
        self.cli("user", "add", author, "--role", "author", "--password-stdin", stdin="pw-" * 6)

    @contextmanager
    def serving(self, *args: str) -> Iterator[subprocess.Popen[bytes]]:
        err = open(self.dir / "serve.err", "ab")
        process = subprocess.Popen(
            [COMMAND, "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=self.environ(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=self.dir,
        )
        try:
            wait_http(f"{self.base_url}/healthz", process, "serve")
            yield process
        finally:
            stop(process)
            err.close()

    def settings(self) -> Any:
        from fediverse_stories.settings import Settings

        return Settings.from_environ(self.env, env_file=None)


def run_json(args: list[str], timeout: float = 600) -> Any:
    """Run a helper process that prints one JSON document last on stdout."""
    done = subprocess.run([PY, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{args}: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fire(port: int, requests: Path, *, connections: int, warmup: int) -> dict[str, Any]:
    """Replay pickled raw requests at 127.0.0.1:port from bench/loadgen.py in its own process:
    its answer (seconds, count, statuses, rate) for the timed part after `warmup` requests."""
    result: dict[str, Any] = run_json(
        [
            "-m",
            "bench.loadgen",
            "127.0.0.1",
            str(port),
            str(requests),
            "--connections",
            str(connections),
            "--warmup",
            str(warmup),
        ]
    )
    return result


def in_pool(function: Callable[..., Any], items: Sequence[Any]) -> list[Any]:
    """`function` over `items` on every core (it must be a module-level function)."""
    with ProcessPoolExecutor(CORES) as pool:
        return list(pool.map(function, items, chunksize=max(1, len(items) // (CORES * 4))))


@contextmanager
def uvicorn_app(
    module: str, args: list[str], port: int, what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A bench app (`python -m module ARGS`) that listens on 127.0.0.1:port."""
    process = subprocess.Popen(
        [PY, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, what)
        yield process
    finally:
        stop(process)
