"""A process of fake remote instances for the scale tests: many hosts, one port, real TCP.

Every host is a distinct loopback address 127.0.0.N (Linux routes all of 127.0.0.0/8 to the
loopback interface), each with its own listening socket on the same port, so nothing outside the
machine can reach the sink and our instance sees N distinct remote hosts (distinct domains,
distinct shared inboxes, distinct per-host delivery slots), as on the real network.

Each inbox (`/inbox` and `/users/NAME/inbox`) verifies the Digest and the HTTP signature with
the sender's public key, fetched once per key id from the sender's actor document (over HTTP,
from a real `serve` process). It appends one JSON line per POST to the log file (written and
flushed BEFORE it answers, so a delivery whose sender died mid-request is still counted),
then waits `--delay` seconds and answers 202 (401 when verification failed).

    python tests/scale/sink.py --first 2 --count 200 --delay 1.0 --log FILE

prints the port on stdout once every socket listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activitypub.digest import verify_digest
from activitypub.errors import DigestMismatch
from activitypub.keys import PublicKey, load_public_pem
from activitypub.signatures import claimed_key_id, verify_request_with_key
from activitypub.vocab import ACTIVITY_JSON


class Sink:
    def __init__(self, log_path: str, delay: float) -> None:
        self.log = open(log_path, "a", encoding="utf-8")
        self.delay = delay
        self.keys: dict[str, PublicKey] = {}
        self.key_locks: dict[str, asyncio.Lock] = {}
        self.http = httpx.AsyncClient(timeout=10)

    async def key(self, key_id: str) -> PublicKey:
        lock = self.key_locks.setdefault(key_id, asyncio.Lock())
        async with lock:
            if key_id not in self.keys:
                response = await self.http.get(key_id, headers={"Accept": ACTIVITY_JSON})
                response.raise_for_status()
                public = response.json()["publicKey"]
                if isinstance(public, list):
                    public = next(k for k in public if k.get("id") == key_id)
                if public.get("id") != key_id:
                    raise ValueError(f"{key_id} is not the key its document names")
                self.keys[key_id] = load_public_pem(public["publicKeyPem"])
            return self.keys[key_id]

    def record(self, entry: dict[str, Any]) -> None:
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()

    async def inbox(self, request: Request) -> Response:
        body = await request.body()
        host = request.headers.get("host", "")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = list(request.headers.items())
        entry: dict[str, Any] = {"host": host, "path": request.url.path, "at": time.time()}
        try:
            digest = request.headers.get("digest")
            if digest is None:
                raise DigestMismatch("no Digest header")
            verify_digest(digest, body)
            key_id = claimed_key_id(headers)
            key = await self.key(key_id)
            verify_request_with_key("POST", target, headers, body, key)
            activity = json.loads(body)
        except Exception as error:  # recorded and refused, as a real peer would
            self.record({**entry, "ok": False, "error": f"{type(error).__name__}: {error}"})
            return Response(status_code=401)
        obj = activity.get("object")
        self.record(
            {
                **entry,
                "ok": True,
                "key_id": key_id,
                "id": activity.get("id"),
                "type": activity.get("type"),
                "object": obj.get("id") if isinstance(obj, dict) else obj,
            }
        )
        await asyncio.sleep(self.delay)
        return Response(status_code=202)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/inbox", self.inbox, methods=["POST"]),
                Route("/users/{name}/inbox", self.inbox, methods=["POST"]),
            ]
        )


def listen(first: int, count: int) -> tuple[int, list[socket.socket]]:
    """One listening socket per address 127.0.0.FIRST ... on one port chosen by the kernel
    (tried again with another port if some other process holds it on one of the addresses)."""
    for _ in range(20):
        sockets: list[socket.socket] = []
        port = 0
        try:
            for n in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((f"127.0.0.{n}", port))
                sock.listen(1024)
                port = sock.getsockname()[1]
        except OSError:
            for sock in sockets:
                sock.close()
            continue
        return port, sockets
    raise RuntimeError("no port free on every sink address")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first", type=int, default=2)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    if args.first < 1 or args.first + args.count - 1 > 254:
        parser.error("addresses must stay within 127.0.0.1-254")
    port, sockets = listen(args.first, args.count)
    sink = Sink(args.log, args.delay)
    config = uvicorn.Config(
        sink.app(), lifespan="off", log_level="warning", access_log=False, loop="asyncio"
    )
    server = uvicorn.Server(config)
    print(port, flush=True)
    sys.stdout.close()
    asyncio.run(server.serve(sockets=sockets))


if __name__ == "__main__":
    main()
