"""The inbox ceiling: a bare starlette app doing what an inbox must, and nothing else.

Content type, Digest, Cavage signature verification with the keys in a dict, then the dedupe
(SELECT by activity id and signer) and one INSERT into SQLite (WAL, synchronous=NORMAL, as the
app sets it), committed before the 202. Served by uvicorn the way `serve` is (1 worker, uvloop,
httptools, log level info).

    python -m bench.ceiling_inbox PORT KEYS.json DB.sqlite HOST
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activitypub.digest import verify_digest
from activitypub.keys import PublicKey, load_public_pem
from activitypub.signatures import claimed_key_id, verify_request_with_key


def build(keys_path: str, db_path: str, host: str) -> Starlette:
    with open(keys_path, encoding="utf-8") as file:
        keys: dict[str, PublicKey] = {k: load_public_pem(v) for k, v in json.load(file).items()}
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, uri TEXT, type TEXT,"
        " actor_uri TEXT, signer_key_id TEXT, raw TEXT, received_at REAL,"
        " UNIQUE (uri, signer_key_id))"
    )

    async def inbox(request: Request) -> Response:
        body = await request.body()
        if not request.headers.get("content-type", "").startswith("application/activity+json"):
            return JSONResponse({"error": "content type"}, status_code=415)
        headers = request.headers.items()
        try:
            key_id = claimed_key_id(headers)
            key = keys[key_id]
            verify_digest(request.headers["digest"], body)
            verify_request_with_key(
                "POST", request.url.path, headers, body, key, host_override=host, scheme="http"
            )
            activity = json.loads(body)
        except Exception as error:
            return JSONResponse({"error": str(error)}, status_code=401)
        uri = activity["id"]
        seen = db.execute(
            "SELECT id FROM inbox WHERE uri = ? AND signer_key_id = ?", (uri, key_id)
        ).fetchone()
        if seen is None:
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO inbox (uri, type, actor_uri, signer_key_id, raw, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (uri, activity["type"], activity["actor"], key_id, body.decode(), time.time()),
            )
            db.execute("COMMIT")
        return Response(status_code=202)

    async def healthz(request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[Route("/inbox", inbox, methods=["POST"]), Route("/healthz", healthz)])


def main() -> None:
    port, keys_path, db_path, host = sys.argv[1:5]
    uvicorn.run(
        build(keys_path, db_path, host),
        host="127.0.0.1",
        port=int(port),
        loop="uvloop",
        http="httptools",
        log_level="info",
    )


if __name__ == "__main__":
    main()
