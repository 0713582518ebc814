"""A bovine-herd user acting through its own outbox, as bovine's client library does it.

The client authenticates with Moo-Auth-1 (an Ed25519 did:key registered on the actor with
`python -m bovine_tool.manage NAME --new_did_key`): BovineClient looks the did:key up with
WebFinger on the herd, then POSTs activities to the actor's outbox; bovine-herd signs and
delivers them (Cavage HTTP signatures, rsa-sha256) to the recipients' inboxes.

Environment: BOVINE_DOMAIN (http://b.test), BOVINE_SECRET (the Ed25519 secret printed by
bovine_tool.manage). Every command prints one JSON document on stdout.

  follow ACTOR_URI                       Follow a remote actor
  reply IN_REPLY_TO AUTHOR_URI CONTENT   a public Note replying to an object, cc its author
  post CONTENT                           a public Note to the user's followers
  accept-follows FROM_ACTOR_URI          Accept every Follow from that actor found in the inbox
  inbox [--wait-for TEXT] [--timeout S]  the inbox items (resolved), optionally polling until
                                         one of them contains TEXT
  collection NAME                        the items of followers / following
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from bovine import BovineClient


async def items_of(client: BovineClient, collection_id: str, limit: int = 500) -> list[Any]:
    """Walk an (Ordered)Collection through first/next pages; resolve string items."""
    collection: Any = await client.get(collection_id)
    items: list[Any] = []
    pages_seen = 0
    while collection is not None and pages_seen < 50 and len(items) < limit:
        pages_seen += 1
        items.extend(collection.get("orderedItems", collection.get("items", [])) or [])
        following = collection.get("first") if pages_seen == 1 else None
        following = following or collection.get("next")
        if following is None:
            break
        collection = following if isinstance(following, dict) else await client.get(following)
    resolved = []
    for item in items:
        if isinstance(item, str):
            # bovine keeps what it received; its proxyUrl answers it from its store (or fetches
            # it, signed, from the origin).
            try:
                item = await client.proxy(item)
            except Exception as error:
                item = {"unresolved": item, "error": repr(error)}
        resolved.append(item)
    return resolved


async def send(client: BovineClient, activity: dict[str, Any]) -> dict[str, Any]:
    response = await client.send_to_outbox(activity)
    return {
        "status": response.status,
        "location": response.headers.get("location"),
        "activity": activity,
    }


async def run(args: argparse.Namespace) -> Any:
    async with BovineClient(
        domain=os.environ["BOVINE_DOMAIN"], secret=os.environ["BOVINE_SECRET"]
    ) as client:
        activity_factory, object_factory = client.factories
        if args.command == "whoami":
            return client.information
        if args.command == "follow":
            return await send(client, activity_factory.follow(args.actor).build())
        if args.command == "reply":
            note = object_factory.note(
                content=args.content,
                in_reply_to=args.in_reply_to,
                to={"https://www.w3.org/ns/activitystreams#Public"},
                cc={args.author},
            ).build()
            return await send(client, activity_factory.create(note).build())
        if args.command == "post":
            note = object_factory.note(content=args.content).as_public().build()
            return await send(client, activity_factory.create(note).build())
        if args.command == "accept-follows":
            accepted = []
            for item in await items_of(client, client.information["inbox"]):
                if (
                    isinstance(item, dict)
                    and item.get("type") == "Follow"
                    and (
                        item.get("actor") == args.actor
                        or (
                            isinstance(item.get("actor"), dict)
                            and item["actor"].get("id") == args.actor
                        )
                    )
                ):
                    accepted.append(await send(client, activity_factory.accept(item).build()))
            return {"accepted": accepted}
        if args.command == "inbox":
            deadline = time.monotonic() + args.timeout
            while True:
                items = await items_of(client, client.information["inbox"])
                if args.wait_for is None or any(args.wait_for in json.dumps(i) for i in items):
                    return {"found": True, "items": items}
                if time.monotonic() > deadline:
                    return {"found": False, "items": items}
                await asyncio.sleep(0.5)
        if args.command == "collection":
            return {"items": await items_of(client, client.information[args.name])}
    raise SystemExit(f"unknown command {args.command}")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("whoami")
    sub.add_parser("follow").add_argument("actor")
    reply = sub.add_parser("reply")
    reply.add_argument("in_reply_to")
    reply.add_argument("author")
    reply.add_argument("content")
    sub.add_parser("post").add_argument("content")
    sub.add_parser("accept-follows").add_argument("actor")
    inbox = sub.add_parser("inbox")
    inbox.add_argument("--wait-for")
    inbox.add_argument("--timeout", type=float, default=0)
    sub.add_parser("collection").add_argument("name", choices=["followers", "following"])
    args = parser.parse_args()
    json.dump(asyncio.run(run(args)), sys.stdout)


if __name__ == "__main__":
    main()
