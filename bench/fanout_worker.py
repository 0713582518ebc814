"""A delivery worker for the fan-out variants: the app's own Worker, with a chosen transport.

    FEDIVERSE_STORIES_...=... python -m bench.fanout_worker --transport aiohttp --concurrency 16

Builds the instance's Context from the environment exactly as `fediverse-stories worker` does,
except that the guarded client's inner transport is the one named (httpx's default
`AsyncHTTPTransport`, or the app's default, httpx-aiohttp's, from fediverse_stories/http.py)
and the Worker's concurrency can be set, so they can be measured side by side on the same
code path. Prints "ready" once it polls the queue; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import httpx

from activitypub.fetch import DEFAULT_LIMITS, make_guarded_client


def inner_transport(name: str) -> httpx.AsyncBaseTransport:
    if name == "httpx":
        return httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
    from fediverse_stories.http import AiohttpInner

    return AiohttpInner(limits=DEFAULT_LIMITS)


async def work(transport: str, concurrency: int) -> None:
    from fediverse_stories import jobs  # noqa: F401 - registers the job handlers
    from fediverse_stories.context import Context
    from fediverse_stories.services.instance import load_secret
    from fediverse_stories.settings import Settings
    from fediverse_stories.worker import Worker

    settings = Settings.from_environ(env_file=None)
    client = make_guarded_client(
        allow_private=settings.allow_private_addresses, inner=inner_transport(transport)
    )
    ctx = Context.build(settings, http=client)
    try:
        await load_secret(ctx)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        await Worker(ctx, concurrency=concurrency).run_forever(stop)
    finally:
        await client.aclose()
        await ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", choices=["httpx", "aiohttp"], required=True)
    parser.add_argument("--concurrency", type=int, default=16, help="jobs at once (Worker's)")
    args = parser.parse_args()
    import uvloop

    uvloop.run(work(args.transport, args.concurrency))


if __name__ == "__main__":
    main()
