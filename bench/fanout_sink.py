"""Fan-out sinks, run in their own process: many loopback "instances" that verify and count.

    python -m bench.fanout_sink --first 2 --count 125 --ports 4 --key KEY.json --control PORT

listens on 127.0.0.FIRST ... 127.0.0.(FIRST+COUNT-1), on `--ports` ports each (every distinct
host:port is one remote instance with a shared inbox at /inbox), and prints the list of those
netlocs as one JSON line once every socket listens. Each POST is verified as a real peer would
(Cavage rsa-sha256 signature with the sender's public key from KEY.json, Digest checked, Host
signed as sent) and counted per (sink, activity id); a request that fails is answered 401 and
counted by reason. The control port (127.0.0.1) answers GET /healthz, POST /reset (a new round),
GET /progress (how many sinks each activity has reached, small enough to poll during a round)
and GET /status (the round's counts and arrival times, JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from activitypub.keys import PublicKey, load_public_pem
from activitypub.signatures import claimed_key_id, verify_request_with_key


class Counts:
    """One round of receipts: per (sink netloc, activity id), with arrival times."""

    def __init__(self) -> None:
        self.receipts: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[str] = Counter()
        self.first = 0.0
        self.reached: Counter[str] = Counter()  # activity id -> distinct sinks that have it
        self.last = 0.0
        self.times: list[float] = []  # every receipt's arrival, for the round's timeline

    def add(self, sink: str, activity_id: str) -> None:
        now = time.time()
        self.first = self.first or now
        self.last = now
        self.times.append(now)
        self.receipts[(sink, activity_id)] += 1
        if self.receipts[(sink, activity_id)] == 1:
            self.reached[activity_id] += 1

    def status(self) -> dict[str, Any]:
        per_activity: dict[str, dict[str, int]] = {}
        for (_, activity_id), n in self.receipts.items():
            entry = per_activity.setdefault(
                activity_id, {"sinks": 0, "receipts": 0, "sinks_more_than_once": 0}
            )
            entry["sinks"] += 1
            entry["receipts"] += n
            entry["sinks_more_than_once"] += n > 1
        return {
            "activities": per_activity,
            "refused": dict(self.refused),
            "first": self.first,
            "last": self.last,
            "times": self.times,
        }


class Sinks:
    """The inbox handler shared by every listening socket of this process."""

    def __init__(self, key_id: str, key: PublicKey) -> None:
        self.key_id = key_id
        self.key = key
        self.counts = Counts()

    async def inbox(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        # The sink is the socket the request arrived on: the Host header is only a claim.
        address, port = request.transport.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
        sink = f"{address}:{port}"
        headers = list(request.headers.items())
        try:
            if request.method != "POST" or request.path != "/inbox":
                raise ValueError(f"{request.method} {request.path}")
            if request.headers.get("host") != sink:
                raise ValueError("Host is not this sink")
            if claimed_key_id(headers) != self.key_id:
                raise ValueError("unexpected keyId")
            verify_request_with_key("POST", request.raw_path, headers, body, self.key)
            activity_id = json.loads(body)["id"]
        except Exception as error:  # counted and refused, as a real peer would
            self.counts.refused[type(error).__name__] += 1
            return web.Response(status=401)
        self.counts.add(sink, str(activity_id))
        return web.Response(status=202)

    async def control(self, request: web.BaseRequest) -> web.Response:
        if request.path == "/reset":
            self.counts = Counts()
            return web.json_response({"ok": True})
        if request.path == "/progress":
            return web.json_response(self.counts.reached)
        if request.path == "/status":
            return web.json_response(self.counts.status())
        return web.json_response({"ok": True})


def listen(first: int, count: int, ports: int) -> list[socket.socket]:
    """`ports` listening sockets on each of `count` addresses, one kernel-chosen port shared
    by every address (tried again if another process holds it on one of them)."""
    sockets: list[socket.socket] = []
    for _ in range(ports):
        for _attempt in range(50):
            batch: list[socket.socket] = []
            port = 0
            try:
                for n in range(first, first + count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    batch.append(sock)
                    sock.bind((f"127.0.0.{n}", port))
                    sock.listen(1024)
                    port = sock.getsockname()[1]
            except OSError:
                for sock in batch:
                    sock.close()
                continue
            sockets += batch
            break
        else:
            raise RuntimeError("no port free on every address")
    return sockets


async def serve(args: argparse.Namespace) -> None:
    key_doc = json.loads(Path(args.key).read_text())
    sinks = Sinks(key_doc["key_id"], load_public_pem(key_doc["public_key_pem"]))
    loop = asyncio.get_running_loop()
    sockets = listen(args.first, args.count, args.ports)
    inbox_server = web.Server(sinks.inbox, access_log=None)
    for sock in sockets:
        await loop.create_server(inbox_server, sock=sock, backlog=1024)
    control = web.Server(sinks.control, access_log=None)
    await loop.create_server(control, "127.0.0.1", args.control)
    netlocs = ["{}:{}".format(*sock.getsockname()[:2]) for sock in sockets]
    print(json.dumps(netlocs), flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--ports", type=int, default=4)
    parser.add_argument("--key", required=True)
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    if not (2 <= args.first and args.first + args.count <= 255):
        sys.exit("addresses must stay within 127.0.0.2-127.0.0.254")
    import uvloop

    uvloop.run(serve(args))


if __name__ == "__main__":
    main()
