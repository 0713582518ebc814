"""bovine-herd for benchmark 5: run by .venv-interop's Python, not ours (its pins clash).

BovineHerd on a Quart app (SQLite through tortoise at BOVINE_DB_URL, inbox items processed in
Quart background tasks, as bovine-herd ships), served by hypercorn, its usual server: one
process, asyncio, h11. Logged the way `serve` logs: the server's access log, and INFO for the
application's own loggers (bovine*), WARNING for the rest, all on stderr.

Run from the directory that holds `bovine_jsonld_cache.sqlite` (bovine reads it at import),
with -P: otherwise bench/ comes first on sys.path and bench/bovine.py shadows bovine.

    .venv-interop/bin/python -P bench/bovine_peer.py 127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from bovine_herd import BovineHerd
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart


def configure_logging() -> None:
    """INFO for bovine's own loggers, as `serve` does for fediverse_stories."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    for name in ("bovine", "bovine_herd", "bovine_process", "bovine_store"):
        logging.getLogger(name).setLevel(logging.INFO)


def main() -> None:
    configure_logging()
    app = Quart(__name__)
    BovineHerd(app, db_url=os.environ["BOVINE_DB_URL"])
    config = Config()
    config.bind = [sys.argv[1]]
    config.accesslog = "-"
    stop = asyncio.Event()

    async def run() -> None:
        # SIGTERM ends the server cleanly (tortoise closes its connections).
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
