"""Benchmark 2: wall time to deliver one story to 10,000 followers on 1,000 instances.

The instance's author gets 10,000 remote followers inserted straight into its database, ten on
each of 1,000 loopback "instances" (host:port pairs served by bench/fanout_sink.py, which
verifies every signature and counts receipts per instance and activity id); each follower has
the instance's shared inbox, so one publish expands into 1,000 delivery jobs. The app side is
`serve` with its in-process worker, warmed up by one untimed fan-out, then timed from the
Create's `created_at` (stored in the publish transaction) to the last receipt at the sinks;
then the same with the layout that puts every core to work (README "Scaling out"): `serve
--no-worker` beside one `fediverse-stories worker` process per core on the same SQLite file.
The bare side is bench/bare_fanout.py, signing and POSTing the same body to the same inboxes
with aiohttp in one process per core, timed from its common start to the last receipt, once
before the app's rounds and once after them: a run's ceiling is the mean of the two, so the
machine's drift within a run weighs on both sides alike. Variants run the app's Worker with
one part changed (bench/fanout_worker.py).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from fediverse_stories.settings import Settings

from .common import (
    COMMAND,
    CORES,
    PY,
    ROOT,
    Instance,
    children_of,
    cpu_seconds,
    fmt,
    free_port,
    in_pool,
    remote_actor_row,
    run_json,
    stats,
    stop,
    vm_hwm_mb,
    wait_http,
)

INSTANCES = 1_000
FOLLOWERS_PER_INSTANCE = 10
SINK_PROCESSES = 2
PORTS_PER_ADDRESS = 4
FIRST_ADDRESS = 2  # 127.0.0.2 ... 127.0.0.251: 250 addresses x 4 ports = 1,000 instances
BARE_CONNECTIONS = 50
WAIT_SECONDS = 120
GRACE_SECONDS = 0.5  # after the last expected receipt: time for a duplicate to show up
SIGN_SECONDS = 1.0

# Idle keep-alive connections from a warm-up round expire after this (httpx.Limits' default
# keepalive_expiry, which the app's aiohttp pool is built with): the timed round then opens
# every connection anew, as the bare script does.
KEEPALIVE_SECONDS = 5.5

# The layout with one `worker` per core: each gets its share of the cores for signing (README
# "Scaling out"), so their helpers are one per core in all, as for one `serve`.
SCALED_WORKERS = CORES
SCALED_SIGNING = max(1, CORES // SCALED_WORKERS)

# Jobs at once of the app's worker unless a variant says otherwise: its default setting.
JOBS = Settings.worker_jobs

# (name, what it is, bench.fanout_worker --client, its --concurrency, signing processes
# each, worker processes)
Variant = tuple[str, str, str, int, int, int]
VARIANTS: list[Variant] = [
    ("worker", "the app's delivery path as it is, in a `worker` process", "own", JOBS, CORES, 1),
    (
        "httpx",
        "deliveries through httpx's request layer (the app before)",
        "httpx",
        JOBS,
        CORES,
        1,
    ),
    (
        "sign-here",
        "signatures made in the worker process itself (0 signing processes)",
        "own",
        JOBS,
        0,
        1,
    ),
    ("64-jobs", "64 jobs at once (the default before)", "own", 64, CORES, 1),
]

PARAGRAPH = (
    "Clean water does not arrive all at once. In the district we visited, the committee that "
    "keeps the borehole running meets every second week under the mango tree by the school, "
    "and the women who keep its accounts read the ledger aloud before anything else is said. "
)


# --- setup -------------------------------------------------------------------------------


async def _author(instance: Instance) -> dict[str, str]:
    from sqlalchemy import select

    from fediverse_stories.context import Context
    from fediverse_stories.db.models import Actor

    ctx = Context.build(instance.settings())
    try:
        async with ctx.sessions() as session:
            actor = (
                await session.execute(
                    select(Actor).where(Actor.local.is_(True), Actor.username == "writer")
                )
            ).scalar_one()
        assert actor.key_id and actor.public_key_pem and actor.private_key_pem
        return {
            "key_id": actor.key_id,
            "public_key_pem": actor.public_key_pem,
            "private_key_pem": actor.private_key_pem,
        }
    finally:
        await ctx.close()


def _follower_rows(netlocs: list[str], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for netloc in netlocs:
        for n in range(FOLLOWERS_PER_INSTANCE):
            uri = f"http://{netloc}/users/reader{n}"
            rows.append(
                remote_actor_row(uri, now, username=f"reader{n}", display_name=f"Reader {n}")
            )
    return rows


async def _insert_followers(instance: Instance, netlocs: list[str]) -> int:
    """10 remote actors per sink, each an accepted follower of the author; the number made."""
    from sqlalchemy import insert, select

    from fediverse_stories.context import Context
    from fediverse_stories.db.models import Actor, Follow, FollowState

    ctx = Context.build(instance.settings())
    now = ctx.clock()
    try:
        async with ctx.sessions.begin() as session:
            author_id = (
                await session.execute(
                    select(Actor.id).where(Actor.local.is_(True), Actor.username == "writer")
                )
            ).scalar_one()
            await session.execute(insert(Actor), _follower_rows(netlocs, now))
            ids = (await session.execute(select(Actor.id).where(Actor.local.is_(False)))).scalars()
            follows = [
                {
                    "follower_id": follower_id,
                    "followed_id": author_id,
                    "state": FollowState.ACCEPTED,
                    "activity_uri": f"{instance.base_url}/bench-follow/{follower_id}",
                    "created_at": now,
                }
                for follower_id in ids
            ]
            await session.execute(insert(Follow), follows)
            return len(follows)
    finally:
        await ctx.close()


class Sinks:
    """The sink processes: their instances' netlocs and their control ports."""

    def __init__(self, controls: list[int], netlocs: list[str], pids: list[int]) -> None:
        self.controls = controls
        self.netlocs = netlocs
        self.pids = pids
        # One client for the whole benchmark: a new httpx client costs about 20 ms of CPU,
        # which polling during a round would take from the processes being measured.
        self.client = httpx.Client(timeout=10)

    def close(self) -> None:
        self.client.close()

    def cpu(self) -> float:
        """CPU seconds the sink processes have used so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    def reset(self) -> None:
        for port in self.controls:
            self.client.post(f"http://127.0.0.1:{port}/reset").raise_for_status()

    def progress(self) -> dict[str, int]:
        """How many instances each activity of the current round has reached so far."""
        reached: dict[str, int] = {}
        for port in self.controls:
            part = self.client.get(f"http://127.0.0.1:{port}/progress").json()
            for activity_id, n in part.items():
                reached[activity_id] = reached.get(activity_id, 0) + n
        return reached

    def status(self) -> dict[str, Any]:
        """The current round merged over every sink process (each owns distinct instances)."""
        merged: dict[str, Any] = {
            "activities": {},
            "refused": {},
            "first": 0.0,
            "last": 0.0,
            "times": [],
        }
        for port in self.controls:
            part = self.client.get(f"http://127.0.0.1:{port}/status").json()
            for activity_id, counts in part["activities"].items():
                into = merged["activities"].setdefault(activity_id, dict.fromkeys(counts, 0))
                for name, n in counts.items():
                    into[name] += n
            for reason, n in part["refused"].items():
                merged["refused"][reason] = merged["refused"].get(reason, 0) + n
            if part["first"]:
                firsts = [t for t in (merged["first"], part["first"]) if t]
                merged["first"] = min(firsts)
            merged["last"] = max(merged["last"], part["last"])
            merged["times"] += part["times"]
        return merged


@contextmanager
def sinks(workdir: Path, key_file: Path) -> Iterator[Sinks]:
    """SINK_PROCESSES processes sharing the 1,000 instances between them."""
    addresses = INSTANCES // PORTS_PER_ADDRESS
    per_process = addresses // SINK_PROCESSES
    with ExitStack() as stack:
        controls: list[int] = []
        netlocs: list[str] = []
        pids: list[int] = []
        for i in range(SINK_PROCESSES):
            control = free_port()
            process = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "bench.fanout_sink",
                    "--first",
                    str(FIRST_ADDRESS + i * per_process),
                    "--count",
                    str(per_process),
                    "--ports",
                    str(PORTS_PER_ADDRESS),
                    "--key",
                    str(key_file),
                    "--control",
                    str(control),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=open(workdir / f"sink-{i}.err", "ab"),
                cwd=ROOT,
            )
            stack.callback(stop, process)
            pids.append(process.pid)
            assert process.stdout is not None
            netlocs += json.loads(process.stdout.readline())
            wait_http(f"http://127.0.0.1:{control}/healthz", process, "a fan-out sink")
            controls.append(control)
        the_sinks = Sinks(controls, netlocs, pids)
        stack.callback(the_sinks.close)
        yield the_sinks


def _sign_rate(pem: str) -> float:
    """RSA-2048 signatures per second on one core (run once per core, at the same time)."""
    from activitypub.keys import load_private_pem
    from activitypub.sigcore import sign_bytes

    key = load_private_pem(pem, unsafe_skip_rsa_key_validation=True)
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < SIGN_SECONDS:
        sign_bytes("rsa-v1_5-sha256", key, f"(request-target): post /inbox {count}".encode())
        count += 1
    return count / (time.perf_counter() - started)


def signing_rate(pem: str) -> float:
    """Signatures per second on all cores."""
    return float(sum(in_pool(_sign_rate, [pem] * CORES)))


# --- one delivery round --------------------------------------------------------------------


async def _latest_create(instance: Instance) -> dict[str, Any]:
    """The newest Create: its id, raw body, when it was stored, and its delivery jobs' states."""
    from sqlalchemy import select

    from fediverse_stories.context import Context
    from fediverse_stories.db.models import Activity, Job

    ctx = Context.build(instance.settings())
    try:
        async with ctx.sessions() as session:
            row = (
                await session.execute(
                    select(Activity)
                    .where(Activity.type == "Create")
                    .order_by(Activity.id.desc())
                    .limit(1)
                )
            ).scalar_one()
            jobs = (
                await session.execute(
                    select(Job.payload, Job.state).where(
                        Job.kind == "deliver", Job.created_at >= row.created_at
                    )
                )
            ).all()
        states: dict[str, int] = {}
        for payload, state in jobs:
            if payload.get("activity") == row.id:
                states[str(state.value)] = states.get(str(state.value), 0) + 1
        return {
            "id": row.uri,
            "raw": row.raw,
            "created": row.created_at.timestamp(),
            "jobs": states,
        }
    finally:
        await ctx.close()


def publish(instance: Instance, workdir: Path, title: str) -> None:
    story = workdir / "fanout-story.md"
    story.write_text(f"# {title}\n\n" + "\n\n".join([PARAGRAPH * 3] * 5) + "\n")
    instance.cli("story", "publish", "--author", "writer", "--title", title, str(story))


def wait_round(the_sinks: Sinks, activity_id: str | None = None) -> None:
    """Wait until one activity (`activity_id`, or any: a round sends one) has reached every
    instance, then a grace period. Polls only the sinks' small progress counts: the poll's CPU
    comes out of the two cores the round is measured on."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        reached = the_sinks.progress()
        if activity_id is not None:
            reached = {activity_id: reached.get(activity_id, 0)}
        if max(reached.values(), default=0) >= INSTANCES:
            break
        time.sleep(0.05)
    time.sleep(GRACE_SECONDS)


def round_result(the_sinks: Sinks, activity_id: str, started: float) -> dict[str, Any]:
    """The finished round's final counts for `activity_id`, timed from `started`."""
    status = the_sinks.status()
    mine = status["activities"].get(activity_id, {"sinks": 0, "receipts": 0})
    return {
        "seconds": status["last"] - started,
        "first_after": status["first"] - started if status["first"] else None,
        # When a tenth, half and nine tenths of the receipts had arrived (s after the start).
        "deciles": {
            str(share): times[min(len(times) - 1, int(len(times) * share / 10))] - started
            for times in [sorted(status["times"])]
            if times
            for share in (1, 5, 9)
        },
        "sinks": mine["sinks"],
        "receipts": mine["receipts"],
        "sinks_more_than_once": mine.get("sinks_more_than_once", 0),
        "other_activities": sum(
            c["receipts"] for a, c in status["activities"].items() if a != activity_id
        ),
        "refused": status["refused"],
    }


def exactly_once(result: dict[str, Any]) -> bool:
    return (
        result["sinks"] == INSTANCES
        and result["receipts"] == INSTANCES
        and not result["other_activities"]
        and not result["refused"]
    )


def warm_up(instance: Instance, the_sinks: Sinks, workdir: Path, title: str) -> None:
    """One untimed fan-out through a just-started worker, so the timed one measures a running
    instance (statements compiled, signing processes up), then the wait that lets its idle
    connections expire."""
    result = app_round(instance, the_sinks, workdir, title)
    if not result["exactly_once"]:
        raise RuntimeError(f"the warm-up fan-out did not arrive exactly once: {result}")
    time.sleep(KEEPALIVE_SECONDS)


def app_round(
    instance: Instance,
    the_sinks: Sinks,
    workdir: Path,
    title: str,
    senders: list[int] | None = None,
) -> dict[str, Any]:
    """Publish one story with the app's worker running; time it to the last receipt. With
    `senders` (the pids of the processes that deliver), the CPU each party spent in the round."""
    the_sinks.reset()
    helpers = [child for pid in senders or [] for child in children_of(pid)]
    before = _cpu(the_sinks, senders, helpers)
    publish(instance, workdir, title)
    # The round's activity is read from the database once it has arrived everywhere (or the
    # wait gave up): reading it meanwhile would take a core from the fan-out being timed.
    wait_round(the_sinks)
    after = _cpu(the_sinks, senders, helpers)
    create = asyncio.run(_latest_create(instance))
    result = round_result(the_sinks, create["id"], create["created"])
    if senders:
        result["cpu"] = {party: after[party] - before[party] for party in after}
    result["jobs"] = create["jobs"]
    result["exactly_once"] = exactly_once(result)
    result["body"] = create["raw"]
    return result


def _cpu(the_sinks: Sinks, senders: list[int] | None, helpers: list[int]) -> dict[str, float]:
    if not senders:
        return {}
    return {
        "sender": sum(cpu_seconds(pid) for pid in senders),
        "helpers": sum(cpu_seconds(pid) for pid in helpers),
        "sinks": the_sinks.cpu(),
    }


def bare_round(the_sinks: Sinks, spec: Path) -> dict[str, Any]:
    the_sinks.reset()
    sinks_before = the_sinks.cpu()
    bare = run_json(
        [
            "-m",
            "bench.bare_fanout",
            str(spec),
            "--processes",
            str(CORES),
            "--connections",
            str(BARE_CONNECTIONS),
        ]
    )
    activity_id = json.loads(json.loads(spec.read_text())["body"])["id"]
    wait_round(the_sinks, activity_id)
    result = round_result(the_sinks, activity_id, bare["t0"])
    result["statuses"] = bare["statuses"]
    result["cpu"] = {"sender": bare["cpu"], "helpers": 0.0, "sinks": the_sinks.cpu() - sinks_before}
    result["exactly_once"] = exactly_once(result)
    return result


def bare_rounds(the_sinks: Sinks, spec: Path, before: dict[str, Any]) -> dict[str, Any]:
    """A second bare round after the app's, merged with the one `before` them: the ceiling is
    the mean of the two times (and of their CPU and timelines), exactly once only if both
    were."""
    after = bare_round(the_sinks, spec)
    merged = dict(before)
    merged["each"] = [before["seconds"], after["seconds"]]
    merged["seconds"] = (before["seconds"] + after["seconds"]) / 2
    merged["cpu"] = {
        party: (before["cpu"][party] + after["cpu"][party]) / 2 for party in after["cpu"]
    }
    merged["first_after"] = (before["first_after"] + after["first_after"]) / 2
    merged["deciles"] = {
        share: (at + after["deciles"][share]) / 2 for share, at in before["deciles"].items()
    }
    merged["exactly_once"] = before["exactly_once"] and after["exactly_once"]
    return merged


@contextmanager
def worker_processes(instance: Instance, count: int, signing: int) -> Iterator[list[int]]:
    """`count` `fediverse-stories worker` processes on the instance (`serve --no-worker`
    beside them is the caller's), each with `signing` signing processes; their pids."""
    env = instance.environ()
    env["FEDIVERSE_STORIES_SIGNING_PROCESSES"] = str(signing)
    with ExitStack() as stack:
        started = []
        for n in range(count):
            err = instance.dir / f"worker-{n}.err"
            err.write_bytes(b"")
            process = subprocess.Popen(
                [COMMAND, "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(err, "ab"),
                cwd=instance.dir,
            )
            stack.callback(stop, process)
            started.append((process, err))
        deadline = time.monotonic() + 60
        for process, err in started:
            while "Worker running" not in err.read_text():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start: {err.read_text()[-2000:]}")
                time.sleep(0.05)
        yield [process.pid for process, _ in started]


def scaled_round(instance: Instance, the_sinks: Sinks, workdir: Path, run: int) -> dict[str, Any]:
    """The timed fan-out with `serve --no-worker` and one `worker` per core (warmed up first)."""
    with (
        instance.serving("--no-worker"),
        worker_processes(instance, SCALED_WORKERS, SCALED_SIGNING) as pids,
    ):
        warm_up(instance, the_sinks, workdir, f"Scaled warm-up {run}")
        result = app_round(instance, the_sinks, workdir, f"Scaled fan-out {run}", senders=pids)
        result["hwm_mb"] = max(vm_hwm_mb(pid) for pid in pids)
    return result


@contextmanager
def variant_worker(
    instance: Instance, client: str, concurrency: int, signing: int
) -> Iterator[subprocess.Popen[bytes]]:
    """A bench.fanout_worker process on the instance's database (no other worker runs)."""
    env = instance.environ()
    env["FEDIVERSE_STORIES_SIGNING_PROCESSES"] = str(signing)
    process = subprocess.Popen(
        [PY, "-m", "bench.fanout_worker", "--client", client, "--concurrency", str(concurrency)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(instance.dir / "worker.err", "ab"),
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"bench.fanout_worker exited with {process.wait()}")
        yield process
    finally:
        stop(process)


def variant_round(
    instance: Instance, the_sinks: Sinks, workdir: Path, variant: Variant
) -> dict[str, Any]:
    name, _, client, concurrency, signing, processes = variant
    with ExitStack() as stack:
        workers = [
            stack.enter_context(variant_worker(instance, client, concurrency, signing))
            for _ in range(processes)
        ]
        warm_up(instance, the_sinks, workdir, f"Variant {name} warm-up")
        result = app_round(instance, the_sinks, workdir, f"Variant {name}")
        result["hwm_mb"] = max(vm_hwm_mb(worker.pid) for worker in workers)
    return result


def helpers_hwm_mb(pid: int) -> float:
    """The largest peak RSS among a process's children (its signing processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return max((vm_hwm_mb(int(child)) for child in children), default=0.0)


# --- the benchmark -------------------------------------------------------------------------


def prepare(workdir: Path) -> dict[str, Any]:
    instance = Instance(workdir, "fanout", signing_processes=str(CORES))
    instance.init()
    author = asyncio.run(_author(instance))
    key_file = workdir / "fanout-key.json"
    key_file.write_text(json.dumps(author))
    return {"instance": instance, "author": author, "key_file": key_file}


def write_spec(workdir: Path, author: dict[str, str], netlocs: list[str], body: str) -> Path:
    spec = workdir / "fanout-bare.json"
    body_file = workdir / "fanout-body.json"
    body_file.write_text(body)
    spec.write_text(
        json.dumps(
            {
                "key_id": author["key_id"],
                "private_key_pem": author["private_key_pem"],
                "body_file": str(body_file),
                "body": body,
                "inboxes": [f"http://{netloc}/inbox" for netloc in netlocs],
            }
        )
    )
    return spec


def one_run(
    prepared: dict[str, Any], the_sinks: Sinks, workdir: Path, run: int, out: dict[str, Any]
) -> None:
    instance: Instance = prepared["instance"]
    spec: Path = prepared["spec"]
    first_bare = bare_round(the_sinks, spec)
    with instance.serving() as serve:
        warm_up(instance, the_sinks, workdir, f"Warm-up {run}")
        app = app_round(instance, the_sinks, workdir, f"Fan-out run {run}", senders=[serve.pid])
        out["serve_hwm_mb"] = max(out.get("serve_hwm_mb", 0.0), vm_hwm_mb(serve.pid))
        out["signing_hwm_mb"] = max(out.get("signing_hwm_mb", 0.0), helpers_hwm_mb(serve.pid))
    app.pop("body")
    scaled = scaled_round(instance, the_sinks, workdir, run)
    scaled.pop("body")
    bare = bare_rounds(the_sinks, spec, first_bare)
    out["app"].append(app)
    out["scaled"].append(scaled)
    out["bare"].append(bare)
    out["sign_rate"].append(signing_rate(prepared["author"]["private_key_pem"]))
    for variant in VARIANTS:
        result = variant_round(instance, the_sinks, workdir, variant)
        result.pop("body")
        out["variants"].setdefault(variant[0], []).append(result)
    print(
        f"run {run}: app {app['seconds']:.2f} s, scaled {scaled['seconds']:.2f} s, "
        f"bare {bare['seconds']:.2f} s, "
        + ", ".join(f"{k} {v[-1]['seconds']:.2f} s" for k, v in out["variants"].items()),
        flush=True,
    )


def run(workdir: Path, runs: int = 3) -> dict[str, Any]:
    prepared = prepare(workdir)
    out: dict[str, Any] = {"app": [], "scaled": [], "bare": [], "sign_rate": [], "variants": {}}
    instance: Instance = prepared["instance"]
    with sinks(workdir, prepared["key_file"]) as the_sinks:
        if len(set(the_sinks.netlocs)) != INSTANCES:
            raise RuntimeError(f"{len(set(the_sinks.netlocs))} sinks, not {INSTANCES}")
        out["followers"] = asyncio.run(_insert_followers(instance, the_sinks.netlocs))
        # The bare script sends the body the app sends: one untimed fan-out to have it.
        with instance.serving():
            first = app_round(instance, the_sinks, workdir, "The body to send")
        out["body_bytes"] = len(first["body"].encode())
        prepared["spec"] = write_spec(workdir, prepared["author"], the_sinks.netlocs, first["body"])
        for n in range(runs):
            one_run(prepared, the_sinks, workdir, n + 1, out)
    out["ratio"] = [
        b["seconds"] / a["seconds"] for a, b in zip(out["app"], out["bare"], strict=True)
    ]
    out["scaled_ratio"] = [
        b["seconds"] / a["seconds"] for a, b in zip(out["scaled"], out["bare"], strict=True)
    ]
    out["sign_bound"] = [INSTANCES / rate for rate in out["sign_rate"]]
    return out


# --- the report ----------------------------------------------------------------------------


def _seconds(results: list[dict[str, Any]]) -> list[float]:
    return [r["seconds"] for r in results]


def _checks(name: str, results: list[dict[str, Any]]) -> str:
    ok = sum(r["exactly_once"] for r in results)
    worst = min(results, key=lambda r: (r["exactly_once"], -r["sinks_more_than_once"]))
    detail = (
        f"{worst['sinks']} instances reached, {worst['receipts']} receipts, "
        f"{worst['sinks_more_than_once']} instances more than once, "
        f"{worst['other_activities']} other activities, refused {worst['refused'] or 'none'}"
    )
    jobs = "; ".join(
        sorted({json.dumps(r["jobs"], sort_keys=True) for r in results if "jobs" in r})
    )
    return f"- {name}: {ok}/{len(results)} runs exactly once (worst run: {detail})" + (
        f"; delivery jobs by state: {jobs}" if jobs else ""
    )


def section(r: dict[str, Any]) -> str:
    """BENCHMARKS.md's section for this benchmark."""
    ratio = stats(r["ratio"])["median"]
    scaled_ratio = stats(r["scaled_ratio"])["median"]
    rate = stats(r["sign_rate"])["median"]
    bare = [r["bare"][i]["seconds"] for i in range(len(r["bare"]))]
    layout = (
        f"`serve --no-worker` + {SCALED_WORKERS} `worker` processes "
        f"({SCALED_SIGNING} signing process each)"
    )
    lines = [
        "## 2. Fan-out to 10,000 followers on 1,000 instances",
        "",
        f"One story published by an author with {r['followers']:,} accepted remote followers "
        f"inserted into the instance's SQLite database, {FOLLOWERS_PER_INSTANCE} on each of "
        f"{INSTANCES:,} loopback instances (127.0.0.2-127.0.0.251 x {PORTS_PER_ADDRESS} ports, "
        f"served by {SINK_PROCESSES} bench/fanout_sink.py processes), each follower with its "
        "instance's shared inbox: the publish queues 1,000 deliveries of one Create of "
        f"{r['body_bytes']:,} bytes. Every sink verifies every request (Cavage rsa-sha256 with "
        "the author's public key, Digest, the Host it was sent to) and counts receipts per "
        "instance and activity id. App: `fediverse-stories serve` with its in-process worker "
        f"({JOBS} jobs at once and {CORES} signing processes, the defaults here; the idle worker "
        "sees the publish's commit through SQLite's data_version, its poll left at the "
        "default 1 s). Each run "
        "starts `serve`, sends one untimed fan-out (a running instance, not one just started), "
        f"waits {KEEPALIVE_SECONDS} s for that round's idle connections to expire (so every "
        "connection is opened anew, as the bare script's are), then publishes the timed story: "
        "from the Create's `created_at` (stored in the publish transaction, before its 1,000 "
        "jobs are written) to the last receipt. Then the same with the layout README "
        f'"Scaling out" gives for using every core on SQLite: {layout}, on the same file. '
        f"Bare: bench/bare_fanout.py, {CORES} processes (one per core) signing the same body the "
        f"same way and POSTing it with aiohttp, {BARE_CONNECTIONS} requests in flight in total, "
        "timed from their common start to the last receipt; it runs before the app's rounds "
        "and again after them, and a run's ceiling is the mean of the two (the machine drifts "
        "within a run). Both ends are read from the sinks' clock.",
        "",
        "| | wall time (s) |",
        "| --- | --- |",
        f"| fediverse-stories `serve` (one process, the default) | {fmt(_seconds(r['app']), 2)} |",
        f"| fediverse-stories, {layout} | {fmt(_seconds(r['scaled']), 2)} |",
        f"| bare aiohttp script, {CORES} processes (mean of the rounds before and after) | "
        f"{fmt(bare, 2)} |",
        f"| signing bound: {INSTANCES:,} RSA-2048 signatures at {rate:,.0f}/s on {CORES} cores "
        f"| {fmt(r['sign_bound'], 2)} |",
        "",
        f"Ratio (bare time / app time), goal >= 0.7: one `serve` {fmt(r['ratio'], 2)}, "
        f"{'met' if ratio >= 0.7 else '**missed**'}; {layout} {fmt(r['scaled_ratio'], 2)}, "
        f"{'met' if scaled_ratio >= 0.7 else '**missed**'}. First receipt after the publish: "
        f"`serve` {fmt([a['first_after'] for a in r['app']], 2)} s, "
        f"the {SCALED_WORKERS} workers {fmt([a['first_after'] for a in r['scaled']], 2)} s. "
        "Peak RSS of one of those worker processes: "
        f"{max(a['hwm_mb'] for a in r['scaled']):.0f} MB.",
        "",
        *_timeline_table(r, layout),
        *_cpu_table(r),
        "Exactly once (each of the 1,000 instances received the activity exactly once, nothing "
        "else arrived, nothing was refused):",
        "",
        _checks("app", r["app"]),
        _checks(f"{SCALED_WORKERS} workers", r["scaled"]),
        _checks("bare (both rounds of each run)", r["bare"]),
        *(_checks(name, results) for name, results in r["variants"].items()),
        "",
        "### Side by side",
        "",
        "The app's own Worker and deliver job in a bench/fanout_worker.py process, or several "
        "where the row says so (the instance's Context built as `fediverse-stories worker` "
        "builds it, with one part changed as the row says; the same warm-up round first), "
        "same publish, same sinks, same runs; `serve` is stopped meanwhile.",
        "",
        "| variant | wall time (s) | bare / variant | peak RSS of a worker process (MB) |",
        "| --- | --- | --- | --- |",
        *(_variant_row(r, v[0], v[1]) for v in VARIANTS if v[0] in r["variants"]),
        "",
        *WHERE_THE_TIME_GOES,
    ]
    return "\n".join(lines)


def _timeline_table(r: dict[str, Any], layout: str) -> list[str]:
    """When a tenth, half, nine tenths and all of the receipts had arrived: whether a side
    loses its time at the start, at the end, or all along."""
    sides = [("`serve`", r["app"]), (layout, r["scaled"]), ("bare script", r["bare"])]
    if not all("deciles" in result for _, results in sides for result in results):
        return []
    lines = [
        "Receipts over time (s after the start, by the sinks' clock; for the bare script the "
        "mean of its two rounds in each run):",
        "",
        "| | first | 10% | 50% | 90% | all |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, results in sides:
        cells = [fmt([res["first_after"] for res in results], 2)]
        cells += [fmt([res["deciles"][str(n)] for res in results], 2) for n in (1, 5, 9)]
        cells.append(fmt(_seconds(results), 2))
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return [*lines, ""]


def _cpu_table(r: dict[str, Any]) -> list[str]:
    """Where the CPU went in the timed rounds: per delivery, per party, and the wall time the
    whole would take if it were spread evenly over every core."""
    sides = [
        ("`serve`", r["app"]),
        (f"{SCALED_WORKERS} `worker` processes", r["scaled"]),
        ("bare script", r["bare"]),
    ]
    if not all("cpu" in result for _, results in sides for result in results):
        return []
    lines = [
        f"CPU per delivery in the timed rounds (ms; /proc for `serve` or the workers, their "
        f"signing processes and the sinks, the bare processes' own clocks from their common "
        f"start, mean of the two bare rounds), and the wall "
        f"time that CPU would take spread evenly over {CORES} cores:",
        "",
        "| | sender | its helper processes | sinks | all | spread over every core (s) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, results in sides:
        per = {
            party: [1000 * res["cpu"][party] / INSTANCES for res in results]
            for party in ("sender", "helpers", "sinks")
        }
        total = [sum(values) for values in zip(*per.values(), strict=True)]
        spread = [t * INSTANCES / 1000 / CORES for t in total]
        lines.append(
            f"| {name} | {fmt(per['sender'], 2)} | {fmt(per['helpers'], 2)} | "
            f"{fmt(per['sinks'], 2)} | {fmt(total, 2)} | {fmt(spread, 2)} |"
        )
    return [*lines, ""]


def _variant_row(r: dict[str, Any], name: str, what: str) -> str:
    results = r["variants"][name]
    ratios = [b["seconds"] / v["seconds"] for b, v in zip(r["bare"], results, strict=True)]
    hwm = max(v["hwm_mb"] for v in results)
    return f"| {what} | {fmt(_seconds(results), 2)} | {fmt(ratios, 2)} | {hwm:.0f} |"


# Measured by hand while the change was made (py-spy and /proc on the worker, one fan-out each).
WHERE_THE_TIME_GOES = [
    "### Where the time goes, and what was changed",
    "",
    "Profiled with `py-spy record --nonblocking -r 200` on the worker process during one "
    "fan-out, with its CPU time read from /proc before and after.",
    "",
    "Before (the code as this benchmark first found it; one run, load about 8): `serve` took "
    "27.8 s for the 1,000 deliveries against 2.17 s for the bare script (ratio 0.08), and the "
    "variants with httpx's transport and with httpx-aiohttp took 20.9 s and 19.9 s: the "
    "transport made no difference. The worker spent about 10 ms of CPU per delivery (11 ms "
    "with httpx, 10 ms with httpx-aiohttp). About 60% of the samples were aiosqlite's "
    "hand-offs between the event loop and its threads (`Connection._execute` queueing a call, "
    "`_connection_worker_thread`), the POST about 5% and RSA signing 1%. Each delivery ran "
    "about a dozen statements in four transactions (claim; read the activity, its actor, the "
    "domain's policy and health; write the domain's health; close the job). Each statement "
    "went through several hand-offs to one of up to fifteen pooled aiosqlite threads, and "
    "writers on different connections waited on each other in SQLite's busy handler.",
    "",
    "First try, not kept: each of those steps as one function on a synchronous connection in "
    "the one-hop thread (`Context.in_one_hop`). It was no faster (24 s). That one thread was "
    "busy for half the run at 6 ms a step: each statement there released the GIL and then "
    "waited for the busy event loop to give it back. The claims (514 for 1,000 jobs, 23 ms "
    "each) also held up the worker's refill.",
    "",
    "Change kept: group commit (fediverse_stories/batching.py, `GroupStep`). Concurrent "
    "jobs' steps of the same kind share one transaction in one hop: the deliveries' reads "
    "(four queries for a whole batch: activities, their actors, the domains' policies "
    "`domains.refusals`, unavailable domains), their health writes (one upsert, "
    "`domains.successes_in`; failures as before) and the jobs' closes (one UPDATE, executed "
    "per job). Claims are one step each. Batches grow under load on their own, and a lone "
    "job still waits for one step. The checks, their order and the per-job outcomes are "
    "unchanged, and a job counts as closed only once its batch has committed. In the same "
    "conditions (load about 6), the worker's CPU per delivery went from 10-11 ms to 4.2 ms "
    "with httpx's transport and 2.8 ms with httpx-aiohttp. The 1,000 deliveries went from "
    "14-15 s to 8.4 s and 4.4 s.",
    "",
    "Then the transport. With the database out of the way, httpx's own transport costs "
    "about 1.4 ms more CPU per delivery than httpx-aiohttp (the first two rows of the table "
    "above). The app's client now sends through httpx-aiohttp (fediverse_stories/http.py, "
    "behind the same guard; aiohttp failures are raised as httpx errors), and httpx-aiohttp "
    "is a runtime dependency for that reason.",
    "",
    "Tried and not kept: signing in a thread (`asyncio.to_thread` in the auth flow), which "
    "made no difference in A/B runs because the event loop is not saturated. The job's "
    "turnaround is waiting on its database steps and its connection. Two worker processes "
    "on SQLite: within the noise of one (table), as their writers wait on each other in "
    "SQLite's busy handler; before the change they were faster than one (13.4 s against "
    "19.9 s), because then the per-statement hand-offs, not SQLite, were the limit.",
    "",
    "Then the event loop (measured with the serve process's CPU time from /proc, which "
    "swings far less than wall time on this shared machine; three fan-outs each). The group "
    "steps and the claims ran in the one-hop thread, and every hand-off to it waited for the "
    "GIL: they now run inline on the event loop whenever SQLite is free "
    "(`Context.in_one_hop(..., inline=True)`, falling back to the thread when another writer "
    "holds the lock): wall 4.1 s -> 2.5 s. The worker then claimed after every finished job, "
    "about 1,000 claim transactions per fan-out: it now claims once a quarter of its slots is "
    "free (or all are), serve CPU 2.35 s -> 1.8 s. Last, jobs at once: 16 -> 1.9-2.4 s CPU and "
    "3.4 s wall, 32 -> 1.5 s and 1.9 s, 64 -> 1.35 s and 2.5 s; 32 is the default now. "
    "And the publish itself: its 1,000 jobs were 1,000 ORM objects flushed one by one; one "
    "executemany now (outbound/store.py), and the first delivery leaves 0.12 s after the "
    "publish instead of 0.31 s.",
    "",
    "At that point (ratio 0.29), about 1.5 ms of CPU per delivery went in one process, for "
    "everything that holds the GIL (py-spy: RSA signing about a fifth, httpx building and "
    "sending the request about a third, the claims and group steps about a quarter), against "
    "about 1 ms spread over every core in the bare script.",
    "",
    "Then signing and sending (measured with a development harness: several fan-outs through "
    "one `serve`, its CPU from /proc, py-spy on it; ratios of single rounds, which swing by "
    "0.1 here):",
    "",
    "1. Signatures in helper processes (fediverse_stories/signing_pool.py, "
    "FEDIVERSE_STORIES_SIGNING_PROCESSES, one per core by default): the RSA operation leaves "
    "the process, the headers are still built in it (`Unsigned` in activitypub/sigcore.py). "
    "A/B over 6 fan-outs each: `serve` CPU 1.2-1.5 s -> 1.1-1.4 s, wall time unchanged; "
    "py-spy showed the event loop stalled in the pipe write, the woken child preempting it "
    "on its core. With the children under SCHED_BATCH and frames batched per turn of the "
    "loop (one write per burst each way; 23 -> 13 us of parent CPU per signature): ratio "
    "0.39-0.45.",
    "2. Deliveries straight through aiohttp behind the same guard (`SignedPoster`, "
    "fediverse_stories/http.py): httpx's request layer over httpx-aiohttp cost 260-300 us of "
    "CPU per POST against 82 us for aiohttp alone (2,000 POSTs to loopback, same process). "
    "`serve` CPU -> 0.62-0.85 s, ratio 0.47-0.63.",
    "3. Statements built once, and Core instead of the ORM for the claims, the deliveries' "
    "reads (only the columns needed) and the health upsert; the host normalisation cached: "
    "CPU 0.57-0.62 s, ratio 0.57-0.64.",
    "4. Full garbage collections took about 55 ms each with the loop stopped (gc callbacks): "
    "`serve` and `worker` now `gc.freeze()` what is alive after start-up.",
    "5. Jobs at once: with signing out of the process, 32 left the loop idle a third of the "
    "time (a job took about 40 ms from claim to close: 13 ms waiting for its signature, 19 "
    "ms for its connection and answer); 64 measured 0.67-0.74, 128 and 256 no better: 64 is "
    "the default now.",
    "6. Those rounds reused the previous round's connections (aiohttp keeps idle ones for 5 "
    "s, all 1,000 of them); this benchmark now lets them expire before the timed round so "
    "both sides connect anew, and the same code measures the ratio in the table above.",
    "",
    "Tried and not kept: the POSTs sent from the helper processes too (they signed and sent, "
    "`serve` kept the database work and the address guard, the POST pinned before it left): "
    "`serve` CPU 0.55 -> 0.32 s, but the helpers took 0.67-0.74 s between them for work "
    "that cost `serve` about 0.22 s, and the wall time was no better (0.91-1.06 s); reverted "
    "as more moving parts for nothing. One signing process instead of two: no better.",
    "",
    "Where the rest went then: `serve` spent about 0.5-0.6 ms of CPU per delivery on one "
    "core (py-spy: connecting and aiohttp about a third, the database steps about a quarter, "
    "the event loop a tenth), runnable but waiting for a core 0.15-0.3 s per fan-out "
    "(/proc/PID/schedstat's run delay), and its first POST left about 0.1 s after the "
    "publish. Also tried: the signing processes at nice 10 (less run delay for `serve`, "
    "0.14-0.19 s, no clear change in wall time).",
    "",
    "7. The next session (the same harness, and the CPU table above, new then): the batched "
    "steps (`GroupStep`) ran an ORM session per batch: they run on the kept Core connection "
    "now. The worker ran about 130 empty claims per fan-out at its tail (179 claims for "
    "1,000 jobs, traced: once the queue was drained, one per finished job): a claim that saw "
    "every due job now holds off the next one for 50 ms unless new jobs wake the worker. "
    "Per POST: the body's digest once per activity and batch, the guard vetting the URL "
    "already split, HTTP dates and IP literals cached, no cookie jar. The signing processes "
    "answered a burst of 32 signatures in one write, so the first deliveries waited for the "
    "burst's last signature: they answer every 8 now (first receipt 0.14-0.19 s -> "
    "0.08-0.12 s after the publish). The worker wakes on the publish's commit (SQLite's "
    "data_version, fediverse_stories/wakeup.py), so this benchmark no longer shortens its "
    "poll. Ratio 0.56 -> 0.65 and 0.67 in two `make bench` runs of 3 (the table above is "
    "the second), on a machine about 1.7 times slower than in the previous report (bare "
    "0.50 -> 0.88 s) and swinging within a run (bare 0.73-1.20 s in the last one).",
    "",
    "Where the rest goes now (the CPU table): `serve` spends less CPU per delivery (all of "
    "the work but the RSA operation, the database included) than each bare process spends "
    "per delivery with its signature, and the instance as a whole (`serve` and its signing "
    "processes) about a third more than the bare script. Spread evenly over the two cores "
    "with the sinks' share, our CPU would take about 1.0 s against the bare script's 0.8 s, "
    "a ratio near 0.78. It is not spread evenly: all of it but the RSA operation runs in one "
    "process on one core, where the bare script runs two, and that process waits for a core "
    "part of the time (0.3-0.5 s of run delay per fan-out on this machine) behind the sinks "
    "and the signing processes. Tried again and not kept: the helpers sending the POSTs as "
    "well (`serve` 0.41-0.52 s of CPU, but each helper 0.58-0.75 s, as pipes, JSON and a "
    "second event loop per delivery come on top; no better, with 64 or 128 jobs at once, "
    "with or without SCHED_BATCH). Measured then: two `worker` processes on the "
    "SQLite file beside `serve --no-worker` (each claim is exclusive through its guarded "
    "UPDATE; every sink received exactly once): 1.27-1.56 s against 1.40-1.95 s for one "
    "worker in the same minutes with the harness, about 10-15% less.",
    "",
    '8. The session after: that layout is supported now (README "Scaling out": several '
    "`worker` processes on one machine's SQLite file; tests/scale runs it with a SIGKILL on "
    "both backends) and has its own row in the tables above, and the bare script runs before "
    "and after the app's rounds (a run's ceiling is their mean: single bare rounds swung by "
    "a third within a run). Measured with a harness (4-5 rounds per layout, interleaved, "
    "each with its bare round): one worker 0.47-0.61 of the bare script, two workers with one "
    "signing process each 0.63-0.71, two with two each or signing in their own process "
    "about the same, two with 32 jobs each 0.65. The two workers together spend about a "
    "quarter more CPU than one (smaller group-commit batches, both claiming, SQLite's lock "
    "taken in turn), so they gain less than the second core. The new timeline table shows "
    "where the rest goes: not at the start or the end but all along (the app's middle 80% "
    "of receipts arrive at 730-1,000/s, the bare script's at 1,150-1,450/s), plus about "
    "0.1 s more before the first tenth (the publish's own transaction writes the 1,000 jobs "
    "in 35-40 ms of it; a Core insert instead of the ORM's bulk insert saved about 5 ms). "
    "Changed: the collector. With gc.callbacks on the worker, one fan-out ran about 80 "
    "young-generation and 8 older collections, 60-90 ms of its ~1 s of CPU (each finding the "
    "jobs in flight alive); `serve` and `worker` now collect the young generation every "
    "10,000 allocations instead of 700: 2 collections, 25 ms. And `worker` runs on uvloop, "
    "as `serve` does under uvicorn (about 5% less CPU in 4 A/B rounds). Tried and not kept: "
    "every GroupStep's items sharing one transaction per batch (a delivery's record and the "
    "previous one's close commit together: the fan-out's commits went from about 280 to 140 "
    "per worker), which moved neither the CPU nor the wall time beyond the noise.",
    "",
    "9. The session after that, with a measure that does not swing: callgrind counting the "
    "instructions of one worker process (bench.fanout_worker under valgrind, collection "
    "switched on for the timed fan-out only), repeatable within about 1% where CPU time "
    "swung by a quarter. The claims and the batched steps run on the DBAPI cursor on SQLite "
    "now (fediverse_stories/db/fast.py's FastStatement, which learnt expanding IN lists, "
    "executemany and RETURNING, with Core's SQL and value processing): the four steps at a "
    "batch of 16 went from 466k to 344k instructions per delivery, the worker in one fan-out "
    "from 1,712k to 1,596k. Jobs at once 64 -> 128 (now a setting, "
    "FEDIVERSE_STORIES_WORKER_JOBS): traced at 64, a delivery spent about 4 ms in its "
    "prepare step, 15 ms waiting for its signature, 28 ms on its POST and 4 + 4 ms recording "
    "and closing, 55 jobs in flight on average and the event loop not saturated; in four "
    "interleaved A/B sets (4-7 rounds each) 128 beat 64 in three (medians 0.63 -> 0.75, "
    "0.59 -> 0.73, 0.64 -> 0.66; the fourth 0.67 -> 0.65), with less worker CPU per delivery "
    "(fewer, larger batches); 192 and 256 were no better than 128. The pump no longer waits on "
    "every running task after every finished job (asyncio.wait adds and removes a callback "
    "on each): 1,602-1,618k -> 1,573-1,592k instructions per delivery. Tried and not kept: "
    "claiming at an eighth of the slots instead of a quarter (0.73 against 0.75), and "
    "signing processes answering every 2 signatures instead of 8 (0.66: more writes), and "
    "the signing processes without SCHED_BATCH or only one of them (0.68 each, against 0.72 "
    "in the same rounds). The publish's 1,000 jobs go in with one executemany on the DBAPI "
    "cursor too (18-24 -> 15-17 ms in-process, part of every fan-out's head). "
    "Where the rest goes now: traced at 128, a delivery waits about 33 ms for its signature "
    "(a claim's burst of about 50 signatures queues at the two signing processes, which "
    "wait for a core behind `serve` and the sinks) and 42 ms on its POST; the instance's "
    "CPU per delivery, all processes together, is within a few percent of the bare script's "
    "(the CPU table), and `serve`'s event loop is busy about 60% of the fan-out: what is "
    "left is latency and how the work is spread over the two cores, not work done.",
    "",
    "10. The session after that found the harness itself taking a core's share from the app's "
    "rounds. While waiting for a round to finish it polled the sinks' full status (every "
    "receipt's arrival time) every 50 ms with a new httpx client each time (about 20 ms of "
    "CPU for each client), and it read the round's Create from the database, with a "
    "whole Context built for it, while the deliveries ran. The bare round pays almost none "
    "of this (its script exits when its last POST is answered, so the polling starts at the "
    "end), the app's paid all of it: CPU of every process on the machine from /proc over "
    "one round, the harness used 0.31-0.36 s during the app's rounds against 0.13-0.14 s "
    "during the bare ones, of about 1.3 s of CPU the fan-out itself needs. The harness now "
    "keeps one client, polls only the sinks' small per-activity counts (GET /progress) and "
    "reads the Create once the round has arrived: 0.05-0.08 s during an app round. Same "
    "code, same machine, rounds of both harnesses: 0.74-0.84 before, 0.86-0.99 after; the "
    "bare script's own time moved little (0.57-0.62 s -> 0.55-0.62 s).",
    "",
]
