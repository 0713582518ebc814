"""A delivery worker for the fan-out variants: the app's own Worker, with one part changed.

    FEDIVERSE_STORIES_...=... python -m bench.fanout_worker --client own --concurrency 128

Builds the instance's Context from the environment exactly as `fediverse-stories worker` does,
except for what is named: `--client own` is the app's own (deliveries straight through aiohttp,
fediverse_stories/http.py), `--client httpx` passes in the same guarded httpx client over
httpx-aiohttp, so deliveries go through httpx's request layer as they did before; the Worker's
jobs at once; and, through the environment, FEDIVERSE_STORIES_SIGNING_PROCESSES. Prints
"ready" once it polls the queue; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def work(client_name: str, concurrency: int | None) -> None:
    from activitypub.fetch import DEFAULT_LIMITS, make_guarded_client
    from fediverse_stories import jobs  # noqa: F401 - registers the job handlers
    from fediverse_stories.app import keep_startup_out_of_gc
    from fediverse_stories.context import Context
    from fediverse_stories.http import AiohttpInner
    from fediverse_stories.services.instance import load_secret
    from fediverse_stories.settings import Settings
    from fediverse_stories.worker import Worker

    settings = Settings.from_environ(env_file=None)
    client = None
    if client_name == "httpx":
        client = make_guarded_client(
            allow_private=settings.allow_private_addresses,
            inner=AiohttpInner(limits=DEFAULT_LIMITS),
        )
    ctx = Context.build(settings, http=client)
    try:
        await load_secret(ctx)
        keep_startup_out_of_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        await Worker(ctx, concurrency=concurrency).run_forever(stop)
    finally:
        if client is not None:
            await client.aclose()
        await ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=["own", "httpx"], required=True)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default: the setting's)"
    )
    args = parser.parse_args()
    import uvloop

    uvloop.run(work(args.client, args.concurrency))


if __name__ == "__main__":
    main()
