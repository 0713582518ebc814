"""The bare fan-out: sign and POST one activity body to many inboxes with aiohttp, all cores.

    python -m bench.bare_fanout SPEC.json --processes 2 --connections 50

SPEC.json holds {"key_id", "private_key_pem", "body_file", "inboxes"}. One process per core
takes every N-th inbox; each loads the key and opens its aiohttp session, then all start
together (a barrier) and sign (Cavage rsa-sha256 over (request-target) host date digest
content-type, with Digest, exactly as the app signs) and POST with `--connections` requests in
flight in total. No database, no queue, no guard: the ceiling the app's delivery path is
measured against. Prints {"t0", "seconds", "statuses", "cpu"}: t0 is the wall-clock start (the
sinks time the last receipt on the same clock), cpu the CPU seconds its processes spent from
their common start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
from collections import Counter
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from activitypub.keys import PrivateKey, load_private_pem
from activitypub.signatures import sign_request_headers
from activitypub.vocab import ACTIVITY_JSON


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, key_id: str, key: PrivateKey
) -> int:
    """Sign one POST of `body` to `url` and send it; the status answered (0 if it failed)."""
    netloc = urlsplit(url).netloc
    base = [("Host", netloc), ("Content-Type", ACTIVITY_JSON)]
    added = sign_request_headers("POST", url, base, body, key_id=key_id, private_key=key)
    headers = {"Host": netloc, "Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON, **added}
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def post_all(
    inboxes: list[str], body: bytes, key_id: str, key: PrivateKey, connections: int, go: Barrier
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    pending = iter(inboxes)
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        go.wait()  # every process ready: start together

        async def lane() -> None:
            for url in pending:
                statuses[await post(session, url, body, key_id, key)] += 1

        await asyncio.gather(*(lane() for _ in range(connections)))
    return statuses


def child(
    spec_path: str, index: int, processes: int, connections: int, go: Barrier, out: Any
) -> None:
    """One process's share of the inboxes (every `processes`-th one from `index`)."""
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    key = load_private_pem(spec["private_key_pem"], unsafe_skip_rsa_key_validation=True)
    body = Path(spec["body_file"]).read_bytes()
    share = spec["inboxes"][index::processes]
    cpu = time.process_time()  # from here: the barrier, then this process's deliveries
    statuses = uvloop.run(post_all(share, body, spec["key_id"], key, connections, go))
    out.put({"statuses": dict(statuses), "cpu": time.process_time() - cpu})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    mp = multiprocessing.get_context("fork")
    go = mp.Barrier(args.processes + 1)
    out = mp.Queue()
    per_process = max(1, args.connections // args.processes)
    workers = [
        mp.Process(target=child, args=(args.spec, i, args.processes, per_process, go, out))
        for i in range(args.processes)
    ]
    for worker in workers:
        worker.start()
    go.wait(timeout=60)
    t0 = time.time()
    started = time.perf_counter()
    statuses: Counter[str] = Counter()
    cpu = 0.0
    for _ in workers:
        got = out.get(timeout=120)
        statuses.update({str(k): v for k, v in got["statuses"].items()})
        cpu += got["cpu"]
    seconds = time.perf_counter() - started
    for worker in workers:
        worker.join()
    print(json.dumps({"t0": t0, "seconds": seconds, "statuses": dict(statuses), "cpu": cpu}))


if __name__ == "__main__":
    main()
