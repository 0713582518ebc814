"""bovine-herd as the peer at http://b.test: a Quart app with BovineHerd, served by hypercorn.

Run from the working directory that holds `bovine_jsonld_cache.sqlite` (bovine reads it at
import) with BOVINE_DB_URL set (the same database bovine_tool.register writes to).

Usage: python bovine_herd_app.py BIND  (e.g. 127.0.0.3:80)
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


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    app = Quart(__name__)
    BovineHerd(app, db_url=os.environ["BOVINE_DB_URL"])
    config = Config()
    config.bind = [sys.argv[1]]
    config.accesslog = "-"
    stop = asyncio.Event()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
