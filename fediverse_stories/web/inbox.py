"""The inboxes (each actor's and the shared one): bound, verify, persist, answer 202.

The order of checks is DESIGN.md's "One inbound activity"; each refusal is answered at once
with its status and a short JSON reason. Work that needs a fetch happens in the worker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activitypub.errors import FetchError, ProtocolError, SignatureError, SignatureInvalid
from activitypub.keys import PublicKey, load_public_pem
from activitypub.signatures import claimed_key_id, verify_request, verify_request_with_key
from activitypub.vocab import id_of, media_type_is_activitystreams, primary_type
from fediverse_stories.batching import GroupStep
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Domain
from fediverse_stories.inbound.origin import NEEDS_OBJECT, OriginError, check_origin
from fediverse_stories.services import comments, domains, ratelimit
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.remote_actors import (
    actor_with_key,
    host_of,
    key_for,
    may_refetch_key,
)
from fediverse_stories.web import inbox_intake
from fediverse_stories.web.verification import request_target, verification_terms

MAX_DEPTH = 64
LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
NUL_ESCAPE = b"\\u0000"  # raw NUL bytes are control characters the JSON decoder refuses


def refuse(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status)


class TooLarge(Exception):
    pass


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, cut at `limit` whatever Content-Length claims (or a chunked stream sends)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge
        except ValueError:
            raise TooLarge from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # built in C; a repeated key shows as a shorter dict
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return result


# Built once: json.loads with a hook builds a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)


def parse_activity(body: bytes) -> dict[str, Any]:
    """A JSON object with no duplicate keys and bounded nesting; ValueError otherwise."""
    _check_depth(body)
    document = _DECODER.decode(body.decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("the body is not a JSON object")
    if LONE_SURROGATE_ESCAPE.search(body):
        # `\ud800` alone decodes to a string no database (and no UTF-8) can hold.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    if NUL_ESCAPE in body and _holds_nul(document):
        raise ValueError("a string holds a NUL character (PostgreSQL text cannot)")
    return document


def _holds_nul(value: Any) -> bool:
    """Whether any key or string in a decoded document holds a NUL (depth is already bounded)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _check_depth(body: bytes) -> None:
    # Cheap scan before parsing: deep nesting costs the parser stack and us nothing useful.
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return  # cannot nest deeper than it has brackets (counted in C, not byte by byte)
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError("the JSON is nested too deeply")
        elif byte in (0x5D, 0x7D):
            depth -= 1


async def inbox(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    settings = ctx.settings
    if "username" in request.path_params:
        async with ctx.sessions() as session:
            target = await local_actor(session, ctx, request.path_params["username"])
        if target is None or target.type == "Application":
            return refuse(404, "no such inbox")
    # 1. Size, before the body is read whole.
    try:
        body = await read_bounded(request, settings.max_body_bytes)
    except TooLarge:
        return refuse(413, f"body larger than {settings.max_body_bytes} bytes")
    except ClientDisconnect:
        return refuse(400, "the client went away")
    # 2. Content type.
    if not media_type_is_activitystreams(request.headers.get("content-type")):
        return refuse(415, "content type must be application/activity+json")
    headers = request.headers.items()
    # 3. The claimed signer's domain, with no key fetched.
    try:
        key_id = claimed_key_id(headers)
    except SignatureError as error:
        return refuse(401, f"signature: {error}")
    # The happy path (known key, valid signature, consistent activity) is checked in one hop to
    # the database, then stored with other requests' new activities (`_store`); anything else
    # takes the full path below, which answers in DESIGN.md's order. The inbox is the hot path
    # (bench/inbox.py).
    try:
        activity: dict[str, Any] | None = parse_activity(body)
        malformed = ""
    except (ValueError, RecursionError) as error:
        activity, malformed = None, f"malformed JSON: {str(error)[:100]}"
    intake = await ctx.on_connection(
        lambda connection: _intake(connection, ctx, request, headers, key_id, body, activity),
        inline=True,
    )
    if intake.accepted and activity is not None:
        if not intake.duplicate:
            await _store(ctx, activity, key_id, body)
        return Response(status_code=202)
    if intake.refused:
        return refuse(403, intake.refused)
    # 4. The signature.
    try:
        signer = await _verify(ctx, request, body, intake.cached, intake.health)
    except SignatureError as error:
        return refuse(401, f"signature: {error}")
    except (FetchError, ProtocolError) as error:
        return refuse(401, f"signature key could not be obtained: {type(error).__name__}")
    if signer.suspended:
        return refuse(403, "this actor is suspended here")
    # 5. Well-formed.
    if activity is None:
        return refuse(400, malformed)
    # 6. Origin and ownership checks that need no fetch.
    try:
        check_origin(activity, signer.uri)
    except OriginError as error:
        if error.malformed or not await _allowed_exception(ctx, activity, signer.uri):
            return refuse(400 if error.malformed else 403, str(error))
    if primary_type(activity.get("type"), NEEDS_OBJECT) == "Follow":
        retry_after = await _follow_flood(ctx, signer.uri)
        if retry_after is not None:
            response = refuse(429, "too many follow requests from this actor; slow down")
            response.headers["Retry-After"] = str(retry_after)
            return response
    # 7. Store once and queue processing in the same transaction; then, and only then, 202.
    await _store(ctx, activity, key_id, body)
    return Response(status_code=202)


@dataclass
class Intake:
    """What the one-hop step found: a refusal, the signer's cached actor and domain health, or
    that the activity passed every check (and whether it is already stored)."""

    refused: str | None = None
    cached: Actor | None = None
    health: Domain | None = None
    accepted: bool = False  # answer 202 once it is stored
    duplicate: bool = False  # already stored: nothing to store


def _intake(
    connection: Connection,
    ctx: Context,
    request: Request,
    headers: list[tuple[str, str]],
    key_id: str,
    body: bytes,
    activity: dict[str, Any] | None,
) -> Intake:
    """The inbox's reading step, run whole in one hop: when the signer's key is cached and
    everything checks out with it, the activity is accepted (and found already stored, or to
    be stored by `_store` with the other requests' new activities).

    Only that happy path is finished here; any doubt (no cached key, a signature that fails,
    a suspended actor, health to reset, an origin exception, a Follow to rate-limit) returns
    the policy verdict, the cached actor and its domain's health, and leaves the answer to the
    general path in `inbox`.
    """
    reading = None
    if activity is not None and isinstance(activity.get("id"), str):
        reading = inbox_intake.read(connection, host_of(key_id), key_id, activity["id"])
    if reading is not None and reading.refused:
        return Intake(refused=reading.refused)
    if (
        reading is not None
        and activity is not None
        and reading.actor_uri is not None
        and reading.public_key_pem
        and not reading.suspended
        and not reading.health_to_reset
        and primary_type(activity.get("type"), NEEDS_OBJECT) != "Follow"
    ):
        try:
            key = inbox_intake.public_key(reading.public_key_pem)
            _verify_with(ctx, request, headers, body, key)
            if not reading.stored:
                # What this signer stored under this id passed these checks when it came: a
                # retry is acknowledged whatever it claims, as it changes nothing.
                check_origin(activity, reading.actor_uri)
        except (ProtocolError, OriginError):
            pass  # the general path answers why
        else:
            return Intake(accepted=True, duplicate=reading.stored)
    # The general path's reading, through the ORM on the same connection and transaction.
    with Session(bind=connection, expire_on_commit=False) as session:
        refused = domains.refusal(session, host_of(key_id))
        if refused:
            return Intake(refused=refused)
        cached = actor_with_key(session, key_id)
        health = session.get(Domain, cached.domain) if cached is not None else None
    return Intake(cached=cached, health=health)


def _health_to_reset(health: Domain | None, actor: Actor) -> bool:
    """A verified request from a domain with recorded failures resets them: a write is needed
    (`domains.record_verified_request`). True also when the row read is not the actor's."""
    if health is None:
        return False
    return health.domain != actor.domain or domains.has_failures(
        health.failures_since, health.unavailable, health.failure_days
    )


async def _follow_flood(ctx: Context, actor_uri: str) -> int | None:
    """Seconds to wait when this actor sent too many Follows lately (each queues an Accept)."""
    settings, now = ctx.settings, ctx.clock()
    key = f"inbox-follow:{actor_uri[:250]}"
    window = settings.follow_window_seconds
    async with ctx.sessions.begin() as session:
        if await ratelimit.is_limited(session, key, settings.follow_limit, window, now):
            return await ratelimit.seconds_left(session, key, window, now)
        await ratelimit.hit(session, key, window, now)
    return None


async def _allowed_exception(ctx: Context, activity: dict[str, Any], signer_uri: str) -> bool:
    """The two cases where the signer is not the owner of everything named, and why they are safe.

    A reply forwarded by the owner of the thread it answers: the worker trusts only the object
    fetched from its own origin. A Delete of a comment by the owner of its thread: the owner
    decides what its thread shows.
    """
    kind = primary_type(activity.get("type"), NEEDS_OBJECT)
    actor = id_of(activity.get("actor"))
    if kind == "Create" and actor != signer_uri:
        obj = activity.get("object")
        try:
            check_origin(activity, str(actor))  # the claimed content must still be consistent
        except OriginError:
            return False
        parent = id_of(obj.get("inReplyTo")) if isinstance(obj, dict) else None
        if parent is None:
            return False
        async with ctx.sessions() as session:
            thread = await comments.thread_of(session, parent)
            thread_owner = await session.get(Actor, thread[0].author_id) if thread else None
        return thread_owner is not None and thread_owner.uri == signer_uri
    if kind == "Delete" and actor == signer_uri:
        object_id = id_of(activity.get("object"))
        async with ctx.sessions() as session:
            owner = await comments.thread_owner_of(session, object_id) if object_id else None
        return owner == signer_uri
    return False


async def _verify(
    ctx: Context,
    request: Request,
    body: bytes,
    cached: Actor | None = None,
    health: Domain | None = None,
) -> Actor:
    """Verify with the cached key; on failure refetch the key once (rate-limited) and retry.

    `cached` is the actor already read for this keyId (None: look it up), `health` its domain's
    row as read with it: the verified request resets that domain's failures only if it has any.
    """
    resolved: dict[str, Actor] = {}

    async def resolver(key_id: str, *, refresh: bool = False) -> PublicKey:
        if not refresh and cached is not None and cached.key_id == key_id and cached.public_key_pem:
            resolved["actor"] = cached
            return load_public_pem(cached.public_key_pem)
        key, actor = await key_for(ctx, key_id, refresh=refresh)
        resolved["actor"] = actor
        return key

    def verify(resolve: Any) -> Any:
        target = request_target(request)
        return verify_request(
            request.method,
            target,
            request.headers.items(),
            body,
            resolve,
            **verification_terms(ctx, target),
        )

    try:
        await verify(resolver)
    except SignatureInvalid:
        actor = resolved.get("actor")
        if actor is None or not may_refetch_key(ctx, actor):
            raise

        async def refreshed(key_id: str) -> PublicKey:
            return await resolver(key_id, refresh=True)

        await verify(refreshed)
    actor = resolved["actor"]
    if actor is not cached or _health_to_reset(health, actor):
        # Failures to reset (or the domain's row not read yet): the write may be needed.
        async with ctx.sessions.begin() as session:
            await domains.record_verified_request(session, actor.domain, ctx.clock())
    return actor


def _verify_with(
    ctx: Context, request: Request, headers: list[tuple[str, str]], body: bytes, key: PublicKey
) -> None:
    """The signature checked with a key in hand (synchronous: it runs inside the one hop)."""
    target = request_target(request)
    verify_request_with_key(
        request.method,
        target,
        headers,
        body,
        key,
        **verification_terms(ctx, target),
    )


async def _store(ctx: Context, activity: dict[str, Any], key_id: str, body: bytes) -> None:
    """Store the activity once, with its job; return when that has committed (a replay is a
    no-op). Concurrent requests' activities share one transaction (`_STORE_NEW`)."""
    if await _STORE_NEW.run(ctx, (activity, key_id, body, ctx.clock())):
        ctx.wakeup.notify()


# One commit per batch of new activities instead of one per request: on SQLite a commit each
# was about two fifths of a new activity's cost (bench/inbox.py). A lone request still waits for
# one step only.
_STORE_NEW: GroupStep[inbox_intake.NewActivity, bool] = GroupStep(inbox_intake.store_new)


routes = [
    Route("/inbox", inbox, methods=["POST"]),
    Route("/users/{username}/inbox", inbox, methods=["POST"]),
]
