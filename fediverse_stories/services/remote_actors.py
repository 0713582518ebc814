"""Remote actors: fetched by signed GET through the guarded client, cached with their keys."""

from __future__ import annotations

import functools
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urldefrag, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from activitypub.errors import FetchError, VocabularyError
from activitypub.fetch import fetch_object
from activitypub.keys import PublicKey, load_public_pem
from activitypub.vocab import ACTOR_TYPES, id_of, primary_type
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor
from fediverse_stories.sanitize import comment_html, plain_text
from fediverse_stories.services.signing import instance_auth

# A cached actor is refreshed when older than this, or when its key fails to verify.
ACTOR_MAX_AGE = timedelta(days=1)
# A failing key triggers at most one refetch per actor in this interval (no refetch storms).
KEY_REFETCH_INTERVAL = timedelta(minutes=5)
MAX_NAME = 500
MAX_SUMMARY = 20_000


@functools.lru_cache(maxsize=4096)
def host_of(uri: str) -> str:
    """The host (and port) of a URI, as written. Cached: the inbox asks it of every keyId."""
    return urlsplit(uri).netloc.lower()


async def actor_by_uri(session: AsyncSession, uri: str) -> Actor | None:
    return (await session.execute(select(Actor).where(Actor.uri == uri))).scalar_one_or_none()


async def actor_by_key_id(session: AsyncSession, key_id: str) -> Actor | None:
    return await session.run_sync(actor_with_key, key_id)


def actor_with_key(session: Session, key_id: str) -> Actor | None:
    """The actor whose key this is, in a synchronous session (the inbox's one-hop step)."""
    return session.execute(
        select(Actor).where(Actor.key_id == key_id).limit(1)
    ).scalar_one_or_none()


def actor_fields(document: dict[str, Any]) -> dict[str, Any]:
    """Our Actor columns from a remote actor document; VocabularyError when it is not one."""
    actor_id = document.get("id")
    kind = primary_type(document.get("type"), ACTOR_TYPES)
    if not isinstance(actor_id, str) or kind not in ACTOR_TYPES:
        raise VocabularyError("not an actor document")
    inbox = document.get("inbox")
    if not isinstance(inbox, str) or host_of(inbox) != host_of(actor_id):
        raise VocabularyError("the actor has no inbox on its own host")
    key = document.get("publicKey")
    if isinstance(key, list):
        key = next((k for k in key if isinstance(k, dict)), None)
    if not isinstance(key, dict) or not isinstance(key.get("publicKeyPem"), str):
        raise VocabularyError("the actor has no publicKey")
    if id_of(key.get("owner")) != actor_id:
        raise VocabularyError("the actor's key is owned by someone else")
    key_id = key.get("id")
    if not isinstance(key_id, str) or host_of(key_id) != host_of(actor_id):
        raise VocabularyError("the actor's key id is not on its host")
    load_public_pem(key["publicKeyPem"])  # refuse unusable keys now, not at every verification
    endpoints = document.get("endpoints")
    shared = endpoints.get("sharedInbox") if isinstance(endpoints, dict) else None
    if not isinstance(shared, str) or host_of(shared) != host_of(actor_id):
        shared = None
    username = document.get("preferredUsername")
    icon = document.get("icon")
    if isinstance(icon, list):
        icon = icon[0] if icon else None
    icon_url = id_of(icon.get("url")) if isinstance(icon, dict) else None
    return {
        "uri": actor_id,
        "type": kind,
        "username": username[:255] if isinstance(username, str) and username else actor_id[-255:],
        "domain": host_of(actor_id),
        "display_name": plain_text(_text(document.get("name")))[:MAX_NAME],
        "summary": comment_html(_text(document.get("summary"))[:MAX_SUMMARY]),
        "url": _http_url(id_of(document.get("url"))),
        "icon_url": _http_url(icon_url),
        "inbox_url": inbox,
        "shared_inbox_url": shared,
        "outbox_url": _http_url(id_of(document.get("outbox"))),
        "followers_url": _http_url(id_of(document.get("followers"))),
        "following_url": _http_url(id_of(document.get("following"))),
        "featured_url": _http_url(id_of(document.get("featured"))),
        "key_id": key_id,
        "public_key_pem": key["publicKeyPem"],
        "manually_approves_followers": document.get("manuallyApprovesFollowers") is True,
    }


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _http_url(value: str | None) -> str | None:
    if value and urlsplit(value).scheme in ("http", "https") and len(value) <= 2048:
        return value
    return None


async def store_actor(ctx: Context, document: dict[str, Any]) -> Actor:
    """Insert or update a remote actor from a document we trust (fetched from its id, or signed).

    Several requests from an actor we have never seen may store it at once: the loser of the
    insert race updates the row the winner made.
    """
    try:
        return await _store_actor(ctx, document)
    except IntegrityError:
        return await _store_actor(ctx, document)


async def _store_actor(ctx: Context, document: dict[str, Any]) -> Actor:
    fields = actor_fields(document)
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        actor = await actor_by_uri(session, fields["uri"])
        if actor is not None and actor.local:
            raise VocabularyError("a remote document claims one of our actors")
        if actor is None:
            # Another actor may hold the (username, domain) pair after a rename: free it.
            clash = (
                await session.execute(
                    select(Actor).where(
                        Actor.username == fields["username"], Actor.domain == fields["domain"]
                    )
                )
            ).scalar_one_or_none()
            if clash is not None:
                clash.username = clash.uri[-255:]
                await session.flush()
            actor = Actor(local=False, created_at=now, **fields)
            session.add(actor)
        else:
            for name, value in fields.items():
                setattr(actor, name, value)
        actor.fetched_at = now
        actor.key_fetched_at = now
        actor.raw = json.dumps(document)[:200_000]
        await session.flush()
        return actor


async def fetch_actor(ctx: Context, uri: str, *, refresh: bool = False) -> Actor:
    """The cached actor, or fetched (signed by the instance actor) when missing, stale or asked."""
    async with ctx.sessions() as session:
        actor = await actor_by_uri(session, uri)
    if actor is not None and actor.local:
        return actor
    fresh = (
        actor is not None and actor.fetched_at and ctx.clock() - actor.fetched_at < ACTOR_MAX_AGE
    )
    if actor is not None and fresh and not refresh:
        return actor
    document = await fetch_object(
        ctx.http, uri, auth=await instance_auth(ctx), deadline=ctx.settings.fetch_timeout_seconds
    )
    return await store_actor(ctx, document)


async def key_for(ctx: Context, key_id: str, *, refresh: bool = False) -> tuple[PublicKey, Actor]:
    """The public key named by a keyId, and the actor that owns it.

    Peers put the key in the actor document (keyId = actor id + `#main-key`); some serve a
    separate key document with an `owner`. Either way the owner's document must list this keyId.
    """
    if not refresh:
        async with ctx.sessions() as session:
            actor = await actor_by_key_id(session, key_id)
        if actor is not None and actor.public_key_pem:
            return load_public_pem(actor.public_key_pem), actor
    document_url = urldefrag(key_id).url
    async with ctx.sessions() as session:
        known = await actor_by_uri(session, document_url)
    if known is not None and known.local:
        raise VocabularyError("a request claims to be signed by one of our own keys")
    document = await fetch_object(
        ctx.http,
        document_url,
        auth=await instance_auth(ctx),
        deadline=ctx.settings.fetch_timeout_seconds,
    )
    if primary_type(document.get("type"), ACTOR_TYPES) not in ACTOR_TYPES:
        owner = id_of(document.get("owner"))
        if owner is None or host_of(owner) != host_of(key_id):
            raise VocabularyError("the key document names no owner on its host")
        document = await fetch_object(
            ctx.http,
            owner,
            auth=await instance_auth(ctx),
            deadline=ctx.settings.fetch_timeout_seconds,
        )
    actor = await store_actor(ctx, document)
    if actor.key_id != key_id:
        raise VocabularyError("the key's owner does not list this key")
    assert actor.public_key_pem is not None
    return load_public_pem(actor.public_key_pem), actor


def may_refetch_key(ctx: Context, actor: Actor) -> bool:
    """A cached key that failed may be refetched once per interval (rate-limited)."""
    last = actor.key_fetched_at
    return last is None or ctx.clock() - last >= KEY_REFETCH_INTERVAL


__all__ = ["FetchError", "fetch_actor", "key_for", "may_refetch_key", "store_actor"]
