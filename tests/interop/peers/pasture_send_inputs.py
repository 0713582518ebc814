"""Send every fediverse-pasture-inputs example to our inbox as a reply to a local story.

Each example is applied the way fediverse-pasture's own sender applies it
(fediverse_pasture/send/modifier.py: `{**note, "content": "text", **example}`), on a Note that
first gets `inReplyTo` = the story, so an example that sets its own `inReplyTo` (or `to`,
`@context`, `attributedTo`, ...) wins, exactly as in pasture's support tables. The Note is
wrapped in a Create by ActivitySender (fediverse_pasture.runner) addressed to Public and to our
author, with a Mention of the author, and POSTed, signed by http://c.test/actor (the pasture
server's plain actor), to the author's inbox.

Prints one JSON list: per example its input name and number, the object id, the HTTP status
and the first 300 characters of the answer.

Usage (working directory: the pasture server's, for data.toml):
    python pasture_send_inputs.py ACTOR_DOMAIN STORY_URL AUTHOR_URI
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
from bovine.activitystreams.utils import combine_as_list
from fediverse_pasture.one_actor import bovine_actor_and_actor_object
from fediverse_pasture.runner import ActivitySender
from fediverse_pasture.runner.config import SendingConfig
from fediverse_pasture_inputs import available


async def main(domain: str, story_url: str, author_uri: str) -> list[dict[str, Any]]:
    results = []
    async with aiohttp.ClientSession() as session:
        bovine_actor, actor = bovine_actor_and_actor_object(domain)
        await bovine_actor.init(session=session)
        sender = ActivitySender.for_actor(bovine_actor, actor)
        sender.sending_config = SendingConfig(include_mention=True)
        author = await bovine_actor.get(author_uri)
        inbox = author["inbox"]
        for name in sorted(available):
            for number, example in enumerate(available[name].examples):

                def modifier(
                    note: dict[str, Any], example: dict[str, Any] = example
                ) -> dict[str, Any]:
                    return {**note, "inReplyTo": story_url, "content": "text", **example}

                sender.init_create_note(modifier)
                # ActivitySender.send, minus its inbox lookup and its swallowing of errors.
                note = {**sender.note}
                note["to"] = combine_as_list(note.get("to", []), [author_uri])
                note["tag"] = combine_as_list(
                    note.get("tag", []), [{"type": "Mention", "href": author_uri}]
                )
                create = sender.activity_factory.create(
                    note, id=sender.make_id(activity=True)
                ).build()
                if "@context" in note:
                    create["@context"] = note["@context"]
                else:
                    create["@context"] = [
                        create["@context"],
                        {"Hashtag": "as:Hashtag", "sensitive": "as:sensitive"},
                    ]
                entry: dict[str, Any] = {
                    "input": name,
                    "number": number,
                    "object_id": note.get("id"),
                    "activity_id": create.get("id"),
                }
                try:
                    response = await bovine_actor.client.post(inbox, json.dumps(create))
                    entry["status"] = response.status
                    entry["answer"] = (await response.text())[:300]
                except Exception as error:
                    entry["status"] = None
                    entry["answer"] = repr(error)[:300]
                results.append(entry)
    return results


if __name__ == "__main__":
    json.dump(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])), sys.stdout)
