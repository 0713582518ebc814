"""One signing process of `signing_pool.SigningPool`: signs bytes with the keys it is sent.

The pool runs it as `python -m fediverse_stories.signing_process`. It reads requests on stdin
and answers on stdout, in order, until stdin closes (the pool closing, or its process gone):

    request: kind (1 byte: K a key, S a signature), key number (4), request id (8),
             payload length (4), payload (K: the key's PEM; S: algorithm, NUL, bytes to sign)
    answer to S: request id (8), ok (1), payload length (4), payload (the signature, or why not)

It imports only the crypto it needs, so it starts fast and stays small.
"""

from __future__ import annotations

import os
import signal
import struct
import sys

from activitypub.keys import PrivateKey, load_private_pem
from activitypub.sigcore import sign_bytes

REQUEST = struct.Struct("!cIQI")
ANSWER = struct.Struct("!QBI")
KEY = b"K"
SIGN = b"S"
ANSWERS_PER_WRITE = 8


def serve(requests: int, answers: int) -> None:
    """Answer signature requests read from the `requests` descriptor until it ends.

    A fan-out asks for signatures in bursts, and one write per burst is cheaper for both
    sides than one per answer; but the first answers of a burst of 32 would then wait for the
    last (about 10 ms), and with them the first deliveries: answers go out every
    ANSWERS_PER_WRITE signatures, and at the end of what has arrived.
    """
    keys: dict[int, PrivateKey | Exception] = {}
    buffer = b""
    while True:
        chunk = os.read(requests, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        out: list[bytes] = []
        offset = 0
        while len(buffer) - offset >= REQUEST.size:
            kind, key_number, request_id, length = REQUEST.unpack_from(buffer, offset)
            end = offset + REQUEST.size + length
            if end > len(buffer):
                break
            payload = buffer[offset + REQUEST.size : end]
            offset = end
            if kind == KEY:
                keys[key_number] = _load(payload)
                continue
            algorithm, _, data = payload.partition(b"\0")
            ok, result = _sign(keys.get(key_number), algorithm.decode("ascii"), data)
            out.append(ANSWER.pack(request_id, ok, len(result)) + result)
            if len(out) == ANSWERS_PER_WRITE:
                _write_all(answers, b"".join(out))
                out = []
        buffer = buffer[offset:]
        if out:
            _write_all(answers, b"".join(out))


def _load(pem: bytes) -> PrivateKey | Exception:
    try:
        # Our own keys, validated when they were made (as services/signing.py loads them).
        return load_private_pem(pem.decode("ascii"), unsafe_skip_rsa_key_validation=True)
    except Exception as error:  # answered to each request that needs this key
        return error


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sign(key: PrivateKey | Exception | None, algorithm: str, data: bytes) -> tuple[int, bytes]:
    if key is None:
        return 0, b"no such key"
    if isinstance(key, Exception):
        return 0, f"the key did not load: {key}".encode()
    try:
        return 1, sign_bytes(algorithm, key, data)
    except Exception as error:  # reported to the request's caller, never fatal here
        return 0, f"{type(error).__name__}: {error}".encode()


def main() -> None:
    # Ctrl-C reaches the whole process group: the pool's owner decides when this one ends
    # (it closes stdin), so an interrupt must not kill it mid-answer.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(os, "SCHED_BATCH"):
        # Woken by a pipe write, a normal process preempts the writer on its own core: the
        # event loop then waits while its signatures are made, the opposite of the point.
        # SCHED_BATCH (Linux) does not preempt on wake-up; it takes the next free core.
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    serve(sys.stdin.fileno(), sys.stdout.fileno())


if __name__ == "__main__":
    main()
