"""Signing on every core: a pool of signing processes, talked to through pipes on the event loop.

One RSA-2048 signature costs about 0.3 ms of CPU, and a fan-out to 1,000 instances needs 1,000
of them: in one process that is a third of the delivery's CPU, all of it holding the GIL
(BENCHMARKS.md, section 2). Threads do not help (every hand-off waits for the GIL), and
`ProcessPoolExecutor` hands each call to two threads of its own. Here each child
(signing_process.py) is an asyncio subprocess: a request is one write to its stdin, an answer
one read on its stdout, both on the event loop, with no thread in between.

The children start when the first signature is asked for (a web process that never signs never
starts any). Whatever goes wrong with them (a child killed, a start that fails, another event
loop), `signer`'s callable signs in this process instead: a signature is never lost to the pool.

    pool = SigningPool(2)
    auth = HttpSignatureAuth(key_id, key, sign_async=pool.signer(pem, key))
    ...
    await pool.close()
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from activitypub.auth import AsyncSign
from activitypub.keys import PrivateKey
from activitypub.sigcore import sign_bytes
from fediverse_stories.signing_process import ANSWER, KEY, REQUEST, SIGN

log = logging.getLogger(__name__)

COMMAND = (sys.executable, "-m", "fediverse_stories.signing_process")
# After a child fails to start or dies, sign in-process for this long before trying again.
RESTART_AFTER_SECONDS = 30.0
# Past this much unsent data to a child, wait for its pipe to drain before writing more.
HIGH_WATER_BYTES = 1 << 20


class SigningUnavailable(Exception):
    """The pool cannot sign right now (no child, a child gone): sign in-process instead."""


class SigningFailed(Exception):
    """A child could not make the signature (a key that does not load, a wrong algorithm)."""


@dataclass
class _Child:
    """One signing process, the keys it has been sent and the answers it owes."""

    process: asyncio.subprocess.Process
    keys: set[int] = field(default_factory=set)
    pending: dict[int, asyncio.Future[bytes]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    # Frames written in one turn of the event loop go out in one write (see _flush).
    outbox: list[bytes] = field(default_factory=list)


class SigningPool:
    """Signs with private keys in `processes` child processes."""

    def __init__(
        self,
        processes: int,
        *,
        command: Sequence[str] = COMMAND,
        restart_after: float = RESTART_AFTER_SECONDS,
    ) -> None:
        self.size = processes
        self.command = tuple(command)
        self.restart_after = restart_after
        self._children: list[_Child] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task[None] | None = None
        self._key_numbers: dict[str, int] = {}
        self._requests = itertools.count(1)
        self._paused_until = 0.0
        self._closed = False

    async def start(self) -> None:
        """Start the children now rather than at the first signature (a worker starting up:
        its first deliveries then do not wait for the children's interpreters)."""
        try:
            await self._child()
        except SigningUnavailable:
            pass  # logged by the pool; signatures are made in-process meanwhile

    @property
    def pids(self) -> list[int]:
        """The process ids of the signing processes running now."""
        return [child.process.pid for child in self._children]

    def signer(self, pem: str, key: PrivateKey) -> AsyncSign:
        """Signs with the key `pem` holds in the pool, or with `key` here if the pool cannot."""
        number = self._key_numbers.setdefault(pem, len(self._key_numbers) + 1)
        encoded = pem.encode("ascii")

        async def sign(algorithm: str, data: bytes) -> bytes:
            try:
                return await self._sign(number, encoded, algorithm, data)
            except (SigningUnavailable, SigningFailed):
                # In-process: the same answer, or the error with its own type (a key that
                # does not fit the algorithm fails here too).
                return sign_bytes(algorithm, key, data)

        return sign

    async def _sign(self, number: int, pem: bytes, algorithm: str, data: bytes) -> bytes:
        child = await self._child()
        if number not in child.keys:
            self._write(child, REQUEST.pack(KEY, number, 0, len(pem)) + pem)
            child.keys.add(number)
        request_id = next(self._requests)
        payload = algorithm.encode("ascii") + b"\0" + data
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        child.pending[request_id] = answer
        self._write(child, REQUEST.pack(SIGN, number, request_id, len(payload)) + payload)
        stdin = child.process.stdin
        if stdin is not None and stdin.transport.get_write_buffer_size() > HIGH_WATER_BYTES:
            await stdin.drain()
        return await answer

    def _write(self, child: _Child, frame: bytes) -> None:
        stdin = child.process.stdin
        if stdin is None or stdin.is_closing():
            raise SigningUnavailable("the signing process has gone")
        if not child.outbox:
            asyncio.get_running_loop().call_soon(self._flush, child)
        child.outbox.append(frame)

    def _flush(self, child: _Child) -> None:
        """Send the frames of this turn of the loop in one write: a fan-out's jobs ask for
        their signatures in bursts, and a write per frame cost more than the frames."""
        frames, child.outbox = child.outbox, []
        stdin = child.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(b"".join(frames))

    async def _child(self) -> _Child:
        """The child with the fewest answers owed, starting missing children first (unless a
        recent failure paused restarts)."""
        loop = asyncio.get_running_loop()
        if self._closed:
            raise SigningUnavailable("the signing pool is closed")
        starting = self._starting is not None and not self._starting.done()
        if self._loop is not loop:
            if self._children or starting:
                # The children's pipes belong to the loop that started them.
                raise SigningUnavailable("the signing pool runs on another event loop")
            self._loop = loop
        if len(self._children) < self.size and time.monotonic() >= self._paused_until:
            if self._starting is None or not starting:
                self._starting = loop.create_task(self._start(self.size - len(self._children)))
            await asyncio.shield(self._starting)
        if not self._children:
            raise SigningUnavailable("no signing process is running")
        return min(self._children, key=lambda child: len(child.pending))

    async def _start(self, count: int) -> None:
        for _ in range(count):
            try:
                process = await asyncio.create_subprocess_exec(
                    *self.command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            except OSError as error:
                self._pause(f"starting a signing process failed: {error}")
                return
            child = _Child(process)
            child.reader = asyncio.get_running_loop().create_task(self._read_answers(child))
            self._children.append(child)

    async def _read_answers(self, child: _Child) -> None:
        stdout = child.process.stdout
        assert stdout is not None
        try:
            while True:
                request_id, ok, length = ANSWER.unpack(await stdout.readexactly(ANSWER.size))
                payload = await stdout.readexactly(length)
                answer = child.pending.pop(request_id, None)
                if answer is None or answer.done():  # its caller was cancelled
                    continue
                if ok:
                    answer.set_result(payload)
                else:
                    answer.set_exception(SigningFailed(payload.decode("utf-8", "replace")))
        except (asyncio.IncompleteReadError, ConnectionError):
            self._drop(child)  # its callers sign in-process now, not after the reaping
            status = await self._reap(child)
            if not self._closed:
                self._pause(f"a signing process ended (exit status {status})")
        finally:
            self._drop(child)

    async def _reap(self, child: _Child) -> int:
        """Its exit status, once it has exited (killed if it has not within 2 s); its pipes
        closed, so nothing of it outlives the event loop."""
        if child.process.stdin is not None:
            child.process.stdin.close()
        try:
            return await asyncio.wait_for(child.process.wait(), 2)
        except TimeoutError:
            child.process.kill()
            return await child.process.wait()

    def _pause(self, why: str) -> None:
        log.warning("%s; signing in-process for %.0f s", why, self.restart_after)
        self._paused_until = time.monotonic() + self.restart_after

    def _drop(self, child: _Child) -> None:
        """Forget a child; whoever waits on it signs in-process."""
        if child in self._children:
            self._children.remove(child)
        for answer in child.pending.values():
            if not answer.done():
                answer.set_exception(SigningUnavailable("the signing process has gone"))
        child.pending.clear()

    async def close(self) -> None:
        """End every child: stdin closed, then a short wait, then a kill."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            await asyncio.gather(self._starting, return_exceptions=True)
        children, self._children = self._children, []
        for child in children:  # each sees the end of its input and exits
            if child.process.stdin is not None:
                child.process.stdin.close()
        for child in children:
            await self._reap(child)
            if child.reader is not None:
                await asyncio.gather(child.reader, return_exceptions=True)
            self._drop(child)
