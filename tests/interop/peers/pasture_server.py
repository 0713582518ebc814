"""fediverse-pasture's actor verifier as the peer at http://c.test, served by hypercorn.

`python -m fediverse_pasture.verify_actor` runs the same app with Quart's development server
bound to 0.0.0.0, which would take port 80 from every address of the namespace; this builds the
very same app (fediverse_pasture.verify_actor.build_app) and binds it to one address. The app
serves the six test actors (alice ... frank, see fediverse_pasture/data_provider/generate.py)
and the plain actor `actor` at http://c.test/NAME; GET /?actor_uri=URI with
`Accept: application/json` runs the verification against URI and answers its result as JSON.
The inputs sender (pasture_send_inputs.py) signs as http://c.test/actor with the keys of the
same data.toml.

Run from the working directory holding `bovine_jsonld_cache.sqlite` (read at import) and where
data.toml (the actors' keys) is generated on first start.

Usage: python pasture_server.py DOMAIN BIND   (e.g. c.test 127.0.0.4:80)
"""

from __future__ import annotations

import asyncio
import signal
import sys

from fediverse_pasture.verify_actor import build_app
from hypercorn.asyncio import serve
from hypercorn.config import Config


def main() -> None:
    domain, bind = sys.argv[1], sys.argv[2]
    app = build_app(False, domain, False, 10)
    config = Config()
    config.bind = [bind]
    config.accesslog = "-"
    stop = asyncio.Event()

    async def run() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    asyncio.run(run())


if __name__ == "__main__":
    main()
