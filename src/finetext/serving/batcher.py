"""Pools concurrent requests into model-sized batches.

Each request puts its texts on a queue and awaits a future. One worker takes the first waiting request,
gathers whatever else arrives within max_wait (up to max_batch texts), runs the model once for all of
them in a thread (so the event loop keeps accepting and validating requests meanwhile) and hands each
request its own slice of the results. While the model runs, new requests queue up and form the next
batch: under load, batches fill without any waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger("finetext")

PredictFn = Callable[[list[str], list[str] | None], list[dict]]


class Overloaded(Exception):
    """More texts are waiting than the server accepts; the client should retry later."""


@dataclass
class Job:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future = field(repr=False)


class Batcher:
    def __init__(self, predict: PredictFn, max_batch: int, max_wait_s: float, max_pending: int,
                 on_batch: Callable[[int], None] | None = None, on_pending: Callable[[int], None] | None = None):
        """on_batch hears the size of every batch run, on_pending every change of the number of texts waiting."""
        self.predict, self.max_batch, self.max_wait_s, self.max_pending = predict, max_batch, max_wait_s, max_pending
        self.on_batch, self.on_pending = on_batch, on_pending
        self._pending = 0
        self.batches = 0
        self.texts_done = 0
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task | None = None
        # One thread: the model runs one batch at a time and uses every core for it.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finetext-model")

    @property
    def pending(self) -> int:
        return self._pending

    @pending.setter
    def pending(self, value: int) -> None:
        self._pending = value
        if self.on_pending is not None:
            self.on_pending(value)

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run(), name="finetext-batcher")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, texts: list[str], pairs: list[str] | None, timeout_s: float) -> list[dict]:
        """The predictions for texts, in order; raises Overloaded or TimeoutError."""
        assert self._queue is not None, "start() the batcher first"
        if self.pending + len(texts) > self.max_pending:
            raise Overloaded
        self.pending += len(texts)
        job = Job(texts, pairs, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        finally:
            if not job.future.done():
                job.future.cancel()  # the worker skips it if it has not started on it yet

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            if not jobs:
                continue
            texts = [t for job in jobs for t in job.texts]
            pairs = [p for job in jobs for p in job.pairs] if jobs[0].pairs is not None else None
            try:
                results = await loop.run_in_executor(self._executor, self.predict, texts, pairs)
            except Exception as exc:  # noqa: BLE001 - every waiting request must hear of it
                log.exception("prediction failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
            else:
                start = 0
                for job in jobs:
                    if not job.future.done():
                        job.future.set_result(results[start:start + len(job.texts)])
                    start += len(job.texts)
                self.batches += 1
                self.texts_done += len(texts)
                if self.on_batch is not None:
                    self.on_batch(len(texts))
            finally:
                self.pending -= sum(len(job.texts) for job in jobs)

    async def _collect(self) -> list[Job]:
        """The first waiting job plus those that join it within max_wait, up to max_batch texts; cancelled
        (timed-out) jobs are dropped."""
        assert self._queue is not None
        first = await self._queue.get()
        jobs, size = [first], len(first.texts)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_batch:
            try:
                if self._queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                else:
                    job = self._queue.get_nowait()
            except TimeoutError:
                break
            if (job.pairs is None) != (first.pairs is None):
                self._queue.put_nowait(job)  # a plain HF model takes both; one batch holds one kind
                break
            jobs.append(job)
            size += len(job.texts)
        live = [job for job in jobs if not job.future.cancelled()]
        self.pending -= sum(len(job.texts) for job in jobs if job.future.cancelled())
        return live
