"""The load generator, run in its own process: pre-built HTTP/1.1 requests over keep-alive
connections (raw asyncio streams on uvloop, so the generator is never the bottleneck).

    python -m bench.loadgen HOST PORT REQUESTS.pickle --connections 64 --warmup 200

Prints {"seconds", "count", "statuses", "rate"} where rate counts 2xx answers per second of the
timed part (the requests after the warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import time
from collections import Counter
from pathlib import Path


async def one_connection(
    host: str, port: int, requests: list[bytes], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for raw in requests:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = 0
            chunked = False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                lname = name.strip().lower()
                if lname == b"content-length":
                    length = int(value)
                elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            statuses[status] += 1
    finally:
        writer.close()


async def fire(host: str, port: int, requests: list[bytes], connections: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    shares = [requests[i::connections] for i in range(connections)]
    await asyncio.gather(*(one_connection(host, port, s, statuses) for s in shares if s))
    return statuses


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    requests: list[bytes] = pickle.loads(Path(args.requests).read_bytes())
    if args.limit:
        requests = requests[: args.limit]
    warmup, timed = requests[: args.warmup], requests[args.warmup :]
    if warmup:
        await fire(args.host, args.port, warmup, min(args.connections, len(warmup)))
    start = time.perf_counter()
    statuses = await fire(args.host, args.port, timed, args.connections)
    seconds = time.perf_counter() - start
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "seconds": seconds,
        "count": len(timed),
        "statuses": {str(k): v for k, v in statuses.items()},
        "rate": ok / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("requests")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(main_async(args))))


if __name__ == "__main__":
    main()
