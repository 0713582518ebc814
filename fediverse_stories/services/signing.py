"""Our actors' signing keys, loaded once per process, and the request auth built from them."""

from __future__ import annotations

from typing import NamedTuple

from activitypub.auth import HttpSignatureAuth
from activitypub.keys import PrivateKey, load_private_pem
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor
from fediverse_stories.services.actors import INSTANCE_ACTOR_USERNAME, local_actor


class SigningActor(NamedTuple):
    """The columns of a local actor that signing needs (a delivery reads only these)."""

    id: int
    uri: str
    key_id: str | None
    private_key_pem: str | None


Signer = Actor | SigningActor


def private_key(ctx: Context, actor: Signer) -> PrivateKey:
    key = ctx.private_keys.get(actor.id)
    if key is None:
        if not actor.private_key_pem:
            raise ValueError(f"{actor.uri} is not a local actor with a key")
        # Our own keys were validated when made; skipping validation saves ~45 ms per load.
        key = load_private_pem(actor.private_key_pem, unsafe_skip_rsa_key_validation=True)
        ctx.private_keys[actor.id] = key
    return key


def auth_for(ctx: Context, actor: Signer) -> HttpSignatureAuth:
    assert actor.key_id is not None and actor.private_key_pem is not None
    key = private_key(ctx, actor)
    return HttpSignatureAuth(
        actor.key_id,
        key,
        clock=lambda: ctx.clock().timestamp(),
        # With several cores the RSA operation runs in the signing pool, off this process.
        sign_async=ctx.signing.signer(actor.private_key_pem, key) if ctx.signing else None,
    )


async def instance_auth(ctx: Context) -> HttpSignatureAuth:
    """Signs our fetches as the instance actor (bovine and secure-mode servers require it)."""
    async with ctx.sessions() as session:
        actor = await local_actor(session, ctx, INSTANCE_ACTOR_USERNAME)
    if actor is None:
        raise RuntimeError("the instance actor is missing: run `fediverse-stories init`")
    return auth_for(ctx, actor)
