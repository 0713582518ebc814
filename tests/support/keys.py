"""A pool of RSA keys made once per test session: generating one costs about 0.1 s."""

from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives.asymmetric import rsa

from activitypub.keys import generate_rsa

POOL_SIZE = 8


@cache
def pooled_key(index: int) -> rsa.RSAPrivateKey:
    """The `index`-th key of the pool (wrapping around), generated on first use only."""
    return generate_rsa() if index < POOL_SIZE else pooled_key(index % POOL_SIZE)
