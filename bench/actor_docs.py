"""The remote actors of benchmark 5, for bovine-herd to fetch their keys from.

Serves `/users/peerN` (an ActivityStreams Person with `publicKey.publicKeyPem`) for each public
key in KEYS.json (a JSON list of PEMs), and `/stats` (how many times each actor was fetched), so
the benchmark can check that bovine fetched every key once, in the warm-up, and never in a
timed window. Signatures on the fetches are not checked: these actors are not under test.

    python -m bench.actor_docs PORT KEYS.json
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activitypub.vocab import ACTIVITY_JSON


def actor_document(base_url: str, n: int, public_pem: str) -> dict[str, object]:
    """Actor n's document, shaped like Mastodon's (the fields bovine reads)."""
    uri = f"{base_url}/users/peer{n}"
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": f"peer{n}",
        "name": f"Peer {n}",
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "followers": f"{uri}/followers",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public_pem},
    }


def build(port: int, pems: list[str]) -> Starlette:
    """The app: one document per key, rendered once, plus the fetch counts."""
    base_url = f"http://127.0.0.1:{port}"
    documents = {
        f"peer{n}": json.dumps(actor_document(base_url, n, pem)).encode()
        for n, pem in enumerate(pems)
    }
    fetched: Counter[str] = Counter()

    async def actor(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in documents:
            return JSONResponse({"error": "no such actor"}, status_code=404)
        fetched[name] += 1
        return Response(documents[name], media_type=ACTIVITY_JSON)

    async def stats(request: Request) -> Response:
        return JSONResponse(dict(fetched))

    async def healthz(request: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/users/{name}", actor),
            Route("/stats", stats),
            Route("/healthz", healthz),
        ]
    )


def main() -> None:
    port, keys_path = int(sys.argv[1]), sys.argv[2]
    with open(keys_path, encoding="utf-8") as file:
        pems: list[str] = json.load(file)
    uvicorn.run(
        build(port, pems),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )


if __name__ == "__main__":
    main()
