"""The signing pool: signatures made in other processes, never lost when those processes fail."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from activitypub.errors import SignaturePolicyError
from activitypub.keys import generate_rsa, private_to_pem
from activitypub.sigcore import ED25519, RSA_V1_5_SHA256, sign_bytes
from fediverse_stories.signing_pool import SigningPool

KEYS = [generate_rsa(), generate_rsa()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_signatures_are_made_in_other_processes_and_match_this_ones() -> None:
    pool = SigningPool(2)
    try:
        signers = [pool.signer(private_to_pem(key), key) for key in KEYS]
        # RSA PKCS#1 v1.5 is deterministic: a pool signature equals the in-process one.
        jobs = [(i % 2, f"(request-target): post /inbox/{i}".encode()) for i in range(300)]
        got = await asyncio.gather(*(signers[k](RSA_V1_5_SHA256, data) for k, data in jobs))
        assert got == [sign_bytes(RSA_V1_5_SHA256, KEYS[k], data) for k, data in jobs]
        assert len(pool.pids) == 2 and os.getpid() not in pool.pids
        assert all(alive(pid) for pid in pool.pids)
    finally:
        await pool.close()


async def test_a_signing_process_killed_mid_burst_costs_no_signature(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = SigningPool(2, restart_after=0.2)
    key = KEYS[0]
    sign = pool.signer(private_to_pem(key), key)
    try:
        await sign(RSA_V1_5_SHA256, b"start the children")
        victim = pool.pids[0]
        burst = [asyncio.create_task(sign(RSA_V1_5_SHA256, f"{i}".encode())) for i in range(400)]
        await asyncio.sleep(0.01)  # the requests are on their way to both children
        os.kill(victim, signal.SIGKILL)
        got = await asyncio.gather(*burst)
        assert got == [sign_bytes(RSA_V1_5_SHA256, key, f"{i}".encode()) for i in range(400)]
        assert victim not in pool.pids
        for _ in range(100):  # logged once the victim is reaped, just after its callers are told
            if "a signing process ended (exit status -9)" in caplog.text:
                break
            await asyncio.sleep(0.02)
        assert "a signing process ended (exit status -9); signing in-process" in caplog.text
        await asyncio.sleep(0.3)  # past the pause: the next signature starts a new child
        await sign(RSA_V1_5_SHA256, b"again")
        assert len(pool.pids) == 2 and victim not in pool.pids
    finally:
        await pool.close()


@pytest.mark.parametrize(
    "command",
    [["/nonexistent/signer"], [sys.executable, "-c", "import sys; sys.exit(3)"]],
    ids=["cannot start", "exits at once"],
)
async def test_a_pool_that_cannot_sign_signs_in_this_process(command: list[str]) -> None:
    pool = SigningPool(2, command=command)
    key = KEYS[1]
    sign = pool.signer(private_to_pem(key), key)
    try:
        for i in range(3):
            data = f"message {i}".encode()
            assert await sign(RSA_V1_5_SHA256, data) == sign_bytes(RSA_V1_5_SHA256, key, data)
    finally:
        await pool.close()


async def test_a_key_that_does_not_fit_fails_as_it_would_here() -> None:
    pool = SigningPool(1)
    key = KEYS[0]
    try:
        with pytest.raises(SignaturePolicyError):
            await pool.signer(private_to_pem(key), key)(ED25519, b"data")
    finally:
        await pool.close()


async def test_closing_ends_every_signing_process() -> None:
    pool = SigningPool(2)
    key = KEYS[0]
    await pool.signer(private_to_pem(key), key)(RSA_V1_5_SHA256, b"x")
    pids = pool.pids
    await pool.close()
    assert pids and not any(alive(pid) for pid in pids)
    assert pool.pids == []
    # Closed, it still signs (in this process): a late delivery is not lost.
    assert await pool.signer(private_to_pem(key), key)(RSA_V1_5_SHA256, b"y") == sign_bytes(
        RSA_V1_5_SHA256, key, b"y"
    )
