"""Benchmark 5: benchmark 1's inbox load, side by side with bovine-herd, in the same run.

The same 100 remote actors (one set of RSA-2048 keys) sign the same kind of requests for both
sides: Create{Note} replies built by bench/inbox.py's `note_body`, signed (Cavage + Digest) by
its `build_requests`, fired by bench/loadgen.py with the same connection count, warm-up and
request count. Ours is `serve --no-worker` on SQLite with the actors pre-inserted (keys cached),
as in benchmark 1. bovine-herd (bench/bovine_peer.py, in .venv-interop) has one registered actor
whose inbox receives the requests; the remote actors' documents are served on loopback by
bench/actor_docs.py, and a warm-up sends one request per actor, one at a time, so that bovine
fetches every key once and keeps it in its in-memory key cache before any timed window.

Each run signs a fresh set for each side (bovine refuses a Date over 5 minutes old), then fires
both, alternating which goes first; bovine's background processing of what it accepted is
waited out before the next timed window, so neither side's leftovers load the other's window.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from .common import (
    ROOT,
    Instance,
    answers,
    fmt,
    free_port,
    run_json,
    stats,
    stop,
    uvicorn_app,
    vm_hwm_mb,
    wait_http,
)
from .inbox import (
    ACTORS,
    CONNECTIONS,
    PER_RUN,
    WARMUP,
    _insert_actors,
    actor_uri,
    build_requests,
    fire,
    make_keys,
    note_body,
)

PEER_PYTHON = ROOT / ".venv-interop" / "bin" / "python"
PEER_APP = ROOT / "bench" / "bovine_peer.py"
LD_CACHE_FILL = ROOT / "tests" / "interop" / "peers" / "ld_cache.py"
LD_CONTEXTS = ROOT / "tests" / "fixtures" / "ld_contexts.json"
USER = "reader"
GOAL = 3.0
DRAIN_LIMIT_SECONDS = 120
PACKAGES = [
    *("bovine-herd", "bovine", "bovine-store", "bovine-process"),
    *("quart", "hypercorn", "tortoise-orm", "aiosqlite"),
]

# bovine loads a JSON-LD context missing from its cache with `requests`, which honours these;
# its other fetches (aiohttp, trust_env off) only ever go to the loopback URLs in the requests.
# So a missing context fails at once on a dead loopback port instead of leaving the machine.
NO_WAY_OUT = {
    name: "http://127.0.0.1:9"
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
} | {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}


class BovinePeer:
    """bovine-herd on SQLite in `workdir`/bovine-peer, served on 127.0.0.1:port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "bovine-peer"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.netloc = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.netloc}"
        self.db_path = self.dir / "bovine.sqlite3"
        self.ld_cache = self.dir / "bovine_jsonld_cache.sqlite"
        self.env = {**os.environ, "BOVINE_DB_URL": f"sqlite://{self.db_path}", **NO_WAY_OUT}
        self.inbox_url = ""

    def peer(self, *args: str) -> str:
        """Run .venv-interop's Python in the peer's directory; its stdout."""
        done = subprocess.run(
            [str(PEER_PYTHON), *args],
            env=self.env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bovine peer {args}: {done.stderr[-2000:]}")
        return done.stdout

    def versions(self) -> dict[str, str]:
        code = (
            "import json, importlib.metadata as m; "
            f"print(json.dumps({{p: m.version(p) for p in {PACKAGES!r}}}))"
        )
        versions: dict[str, str] = json.loads(self.peer("-c", code))
        return versions

    def query(self, sql: str, *params: str) -> list[tuple[Any, ...]]:
        """Read bovine's database (read-only, beside the running server)."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def contexts_cached(self) -> set[str]:
        """The URLs in bovine's JSON-LD context cache (it adds any it had to load)."""
        connection = sqlite3.connect(self.ld_cache)
        try:
            return {url for (url,) in connection.execute("SELECT url FROM jsonld")}
        finally:
            connection.close()

    def register(self) -> None:
        """The receiving actor (bovine_tool, as tests/interop does) and its inbox URL."""
        self.peer("-m", "bovine_tool.register", USER, "--domain", self.base_url)
        rows = self.query("SELECT name FROM bovineactorendpoint WHERE endpoint_type = 'INBOX'")
        self.inbox_url = rows[0][0]

    def stored(self) -> int:
        """Activities bovine's background processing has added to the actor's inbox."""
        rows = self.query("SELECT count(*) FROM collectionitem WHERE part_of = ?", self.inbox_url)
        return int(rows[0][0])

    @contextmanager
    def serving(self) -> Iterator[subprocess.Popen[bytes]]:
        """The server, its schema created at start-up, with the receiving actor registered."""
        self.peer(str(LD_CACHE_FILL), str(LD_CONTEXTS), str(self.dir))
        err = open(self.dir / "peer.err", "ab")
        process = subprocess.Popen(
            [str(PEER_PYTHON), "-P", str(PEER_APP), self.netloc],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            cwd=self.dir,
        )
        try:
            wait_http(f"{self.base_url}/.well-known/nodeinfo", process, "bovine-herd")
            self.register()
            yield process
        finally:
            stop(process)
            err.close()


def peer_actor(docs_port: int) -> Callable[[int], str]:
    """Actor n's id for bovine's side: a document bench/actor_docs.py serves."""
    return lambda n: f"http://127.0.0.1:{docs_port}/users/peer{n}"


def write_set(path: Path, requests: list[bytes]) -> Path:
    path.write_bytes(pickle.dumps(requests))
    return path


def fire_one_by_one(port: int, requests: Path) -> dict[str, Any]:
    """Every request, untimed, on one connection (the key warm-up)."""
    args = ["-m", "bench.loadgen", "127.0.0.1", str(port), str(requests), "--connections", "1"]
    result: dict[str, Any] = run_json(args)
    return result


def fetch_counts(docs_port: int) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"http://127.0.0.1:{docs_port}/stats", timeout=10).json()
    return counts


def warm_keys(
    bovine: BovinePeer, keys: list[tuple[str, str]], docs_port: int, workdir: Path
) -> dict[str, int]:
    """One accepted request per actor, so that bovine has fetched and cached every key.

    One at a time: bovine's key cache (an lru_cache) also keeps a lookup that came back empty,
    which would refuse that actor for the rest of the run, so first fetches are not raced.
    """
    requests = build_requests(
        keys, bovine.base_url, bovine.netloc, ACTORS, bovine.inbox_url, peer_actor(docs_port)
    )
    result = fire_one_by_one(bovine.port, write_set(workdir / "bovine-warm.pickle", requests))
    statuses: dict[str, int] = result["statuses"]
    fetched = fetch_counts(docs_port)
    if statuses != {"202": ACTORS} or len(fetched) != ACTORS:
        err = (bovine.dir / "peer.err").read_text(errors="replace")[-2000:]
        raise RuntimeError(
            f"bovine's key warm-up: answers {statuses}, {len(fetched)} actors fetched: {err}"
        )
    return statuses


def forged_answers(
    keys: list[tuple[str, str]], ours: Instance, bovine: BovinePeer, docs_port: int, workdir: Path
) -> dict[str, dict[str, int]]:
    """Each side's answer to actor 0's request signed with actor 1's key (must be 401).

    The check that a 202 means "verified" on both sides, not merely "received".
    """
    wrong = [(keys[1][0], keys[0][1]), *keys[1:]]
    mine = build_requests(wrong, ours.base_url, ours.netloc, 1)
    theirs = build_requests(
        wrong, bovine.base_url, bovine.netloc, 1, bovine.inbox_url, peer_actor(docs_port)
    )
    seen: dict[str, dict[str, int]] = {}
    for side, port, one in (("ours", ours.port, mine), ("bovine", bovine.port, theirs)):
        path = write_set(workdir / f"bovine-forged-{side}.pickle", one)
        seen[side] = fire_one_by_one(port, path)["statuses"]
    return seen


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_drained(bovine: BovinePeer, pid: int, limit: float = DRAIN_LIMIT_SECONDS) -> float:
    """Seconds until bovine has finished processing what it accepted (bounded by `limit`).

    Finished: its inbox collection has stopped growing for 2 s and the process used under 10%
    of a core over the last half second. CPU alone is not enough: its writes wait on fsync
    (tortoise's SQLite runs WAL with synchronous=FULL), so it can be busy with the CPU idle.
    """
    started = time.monotonic()
    cpu, stored, still = cpu_seconds(pid), bovine.stored(), 0
    while time.monotonic() - started < limit:
        time.sleep(0.5)
        now_cpu, now_stored = cpu_seconds(pid), bovine.stored()
        still = still + 1 if now_stored == stored else 0
        if still >= 4 and now_cpu - cpu < 0.05:
            break
        cpu, stored = now_cpu, now_stored
    return time.monotonic() - started


def request_sets(
    workdir: Path,
    run: int,
    keys: list[tuple[str, str]],
    ours: Instance,
    bovine: BovinePeer,
    docs_port: int,
) -> dict[str, Path]:
    """This run's two request sets, signed now (bovine allows 5 minutes of clock skew)."""
    mine = build_requests(keys, ours.base_url, ours.netloc, PER_RUN)
    theirs = build_requests(
        keys, bovine.base_url, bovine.netloc, PER_RUN, bovine.inbox_url, peer_actor(docs_port)
    )
    return {
        "ours": write_set(workdir / f"bovine-ours-{run}.pickle", mine),
        "bovine": write_set(workdir / f"bovine-theirs-{run}.pickle", theirs),
    }


def one_run(
    out: dict[str, Any],
    sets: dict[str, Path],
    ports: dict[str, int],
    bovine: BovinePeer,
    bovine_pid: int,
    bovine_first: bool,
) -> None:
    """Fire both sides once, bovine's backlog drained before each timed window."""
    order = ["bovine", "ours"] if bovine_first else ["ours", "bovine"]
    for side in order:
        wait_drained(bovine, bovine_pid)
        result = fire(ports[side], sets[side])
        out[side].append(result["rate"])
        out["statuses"].append({side: result["statuses"]})
        out["seconds"].append({side: result["seconds"]})
        if side == "bovine":
            out["drain_seconds"].append(wait_drained(bovine, bovine_pid))


def prepare_ours(workdir: Path, keys: list[tuple[str, str]]) -> Instance:
    """Our instance, initialised, with the 100 remote actors and their keys inserted."""
    ours = Instance(workdir, "bovine-ours")
    ours.init()
    asyncio.run(_insert_actors(ours, keys))
    return ours


def body_bytes(base_url: str, uri: str) -> int:
    return len(note_body(base_url, 0, uuid.uuid4().hex, uri))


def run(workdir: Path, runs: int = 3) -> dict[str, Any]:
    keys = make_keys()
    ours = prepare_ours(workdir, keys)
    bovine = BovinePeer(workdir)
    docs_port = free_port()
    docs_keys = workdir / "bovine-actor-keys.json"
    docs_keys.write_text(json.dumps([public for _, public in keys]))
    out: dict[str, Any] = {"ours": [], "bovine": [], "statuses": [], "seconds": []}
    out["drain_seconds"] = []
    with (
        ours.serving("--no-worker") as serve,
        uvicorn_app("bench.actor_docs", [str(docs_port), str(docs_keys)], docs_port, "actors"),
        bovine.serving() as peer,
    ):
        contexts_before = bovine.contexts_cached()
        out["warm"] = warm_keys(bovine, keys, docs_port, workdir)
        out["forged"] = forged_answers(keys, ours, bovine, docs_port, workdir)
        ports = {"ours": ours.port, "bovine": bovine.port}
        for n in range(runs):
            sets = request_sets(workdir, n, keys, ours, bovine, docs_port)
            one_run(out, sets, ports, bovine, peer.pid, bovine_first=n % 2 == 1)
        out["key_fetches"] = sum(fetch_counts(docs_port).values())
        out["serve_hwm_mb"] = vm_hwm_mb(serve.pid)
        out["bovine_hwm_mb"] = vm_hwm_mb(peer.pid)
        out["bovine_stored"] = bovine.stored()
        # about:bovine is built into bovine: only a missed http(s) context would be a fetch.
        added = bovine.contexts_cached() - contexts_before
        out["contexts_missed"] = sorted(url for url in added if url.startswith("http"))
    out["ratio"] = [a / b for a, b in zip(out["ours"], out["bovine"], strict=True)]
    out["versions"] = bovine.versions()
    out["body_bytes"] = {
        "ours": body_bytes(ours.base_url, actor_uri(0)),
        "bovine": body_bytes(bovine.base_url, peer_actor(docs_port)(0)),
    }
    out["runs"] = runs
    return out


def setup_text(r: dict[str, Any]) -> list[str]:
    """How both sides were run and what was sent."""
    v = r["versions"]
    timed = PER_RUN - WARMUP
    return [
        f"The request mix, the same for both sides: {PER_RUN} Create{{Note}} replies per side and "
        f"run ({r['body_bytes']['ours']} bytes for ours, {r['body_bytes']['bovine']} for bovine: "
        "the URLs differ in length), each from one of "
        f"{ACTORS} remote actors (RSA-2048), signed (Cavage draft, rsa-sha256, over "
        "`(request-target) host date digest content-type`, `Digest: SHA-256=`) before the timed "
        f"window, fired by bench/loadgen.py in its own process over {CONNECTIONS} keep-alive "
        f"connections: {WARMUP} of warm-up, then {timed} timed. Accepted per second = 2xx "
        "answers in the timed window / its duration. Both sides run in the same session, one "
        "after the other, alternating which goes first.",
        "",
        "- Ours: `fediverse-stories serve --no-worker` on SQLite (WAL, synchronous=NORMAL), one "
        "uvicorn worker with uvloop and httptools, the remote actors and their keys "
        "pre-inserted, as in benchmark 1. "
        "Its 202 means: verified, stored and its processing job enqueued in one transaction.",
        f"- bovine-herd {v['bovine-herd']} (bovine {v['bovine']}, bovine-store "
        f"{v['bovine-store']}, bovine-process {v['bovine-process']}; Quart {v['quart']}, "
        f"tortoise-orm {v['tortoise-orm']}, aiosqlite {v['aiosqlite']}), from .venv-interop "
        "(tests/interop/peers/requirements.txt): `BovineHerd(Quart(...), db_url=sqlite://...)` "
        "on a fresh SQLite file with tortoise's defaults (WAL, SQLite's synchronous=FULL) "
        f"(bench/bovine_peer.py) served by hypercorn {v['hypercorn']}, its usual server (one "
        "process, asyncio, h11), with its access log on and INFO for bovine's loggers, as ours "
        "logs. One actor registered with `bovine_tool.register` receives at its inbox "
        "(`/endpoints/<token>`, its own Host). Its 202 means: signature verified, activity "
        "handed to an in-memory Quart background task, which then compacts it (JSON-LD) and "
        "stores it in the same process; nothing is durable at the time of the 202.",
        f"- Keys on bovine's side: the {ACTORS} actors' documents (with "
        "`publicKey.publicKeyPem`) are served on 127.0.0.1 by bench/actor_docs.py; a warm-up "
        f"of one request per actor, one at a time, got answers {r['warm']}, each key fetched "
        "(signed GET by bovine's application actor) and kept in bovine's in-memory key cache "
        f"(`retrieve_public_key` is `lru_cache`d). Key fetches over the whole run: "
        f"{r['key_fetches']} (so none in a timed window). JSON-LD contexts come from bovine's "
        "cache, pre-filled from tests/fixtures/ld_contexts.json as in tests/interop; contexts "
        f"it had to load: {', '.join(r['contexts_missed']) or 'none'}.",
        "- bovine's background processing was waited out before every timed window (its "
        "actor's inbox collection no longer growing, its CPU under 10% of a core): it took "
        f"{fmt(r['drain_seconds'], 1)} s after bovine's window ended; the collection held "
        f"{r['bovine_stored']} activities at the end, of {r['runs'] * PER_RUN + ACTORS} sent.",
    ]


def section(r: dict[str, Any]) -> str:
    """BENCHMARKS.md's section for this benchmark."""
    ratio = stats(r["ratio"])["median"]
    lines = [
        "## 5. Side by side with bovine-herd",
        "",
        *setup_text(r),
        "",
        "| | fediverse-stories | bovine-herd | ours / bovine | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| accepted activities per second | {fmt(r['ours'])} | {fmt(r['bovine'])} | "
        f"{fmt(r['ratio'], 2)} | >= {GOAL:.0f}: {'met' if ratio >= GOAL else '**missed**'} |",
        "",
        f"Answers seen in the timed windows (status: count, per side, all runs): {answers(r)}. "
        "One request signed with another actor's key, sent before the runs to show that a 202 "
        f"means verified on both sides (401 expected): ours {r['forged']['ours']}, "
        f"bovine {r['forged']['bovine']}.",
        f"Peak RSS: ours {r['serve_hwm_mb']:.0f} MB, bovine-herd {r['bovine_hwm_mb']:.0f} MB.",
        "",
    ]
    return "\n".join(lines)
