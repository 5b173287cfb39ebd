"""The batching queue of ``nlpseq-serve``: one worker thread owns the model; requests that arrive together run
as one model call.

Why one thread: torch already spreads one call over its own (``num_threads``) threads, and two calls at once
would only fight over the same cores. Requests wait in a bounded queue (a full queue is refused at once, so an
overloaded server answers quickly instead of timing out); the worker takes the oldest request and the ones
queued behind it, up to ``max_batch_size`` inputs. While a batch runs, new requests pile up, so under load
batches grow by themselves. When the previous batch held several requests, the worker also waits up to
``max_wait_ms`` after the oldest request arrived for more to come: clients answered together send their next
requests together, and a few ms gather them (4 NER clients: 4.0 inputs per model call instead of 2.0). A lone
client is never kept waiting for company that does not exist (waiting always cost it ~2 ms of its ~4 ms).

One bad input must not fail the requests it was merged with: when a merged call raises, each of its requests
is run again alone, and only the bad one gets the error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nlpseq.errors import NlpseqError

log = logging.getLogger("nlpseq.serve")


class Model(Protocol):
    """What the worker needs: ``predict`` with one result per input when ``mergeable`` (so the inputs of several
    requests can be concatenated and the results split back); a model that is not ``mergeable`` (a forecaster:
    one history in, ``horizon`` rows out) runs every request alone."""

    mergeable: bool

    def predict(self, inputs: list) -> list:
        ...


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = True
    max_batch_size: int = 32  # inputs per model call
    max_wait_ms: float = 2.0  # how long the oldest request may wait for others to join its batch
    queue_size: int = 256  # requests waiting for the model; one more is refused with 503


@dataclass(frozen=True)
class Outcome:
    """A request's answer: HTTP ``status`` with ``predictions`` (200) or a one-line ``error``."""

    status: int
    predictions: list | None = None
    error: str | None = None


@dataclass
class Job:
    inputs: list
    done: Callable[[Outcome], None]  # called once, from the worker thread
    alive: Callable[[], bool] = lambda: True  # False once nobody waits for the answer: the job is skipped
    enqueued: float = field(default_factory=time.monotonic)


class QueueFull(NlpseqError):
    """The queue holds ``queue_size`` requests already."""


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class Stats:
    """Counters for ``GET /info``: how many inputs / requests each model call took, refusals, failures."""

    def __init__(self):
        self._lock = threading.Lock()
        self.batch_inputs: Counter[int] = Counter()
        self.batch_requests: Counter[int] = Counter()
        self.requests = self.rejected_queue_full = self.failed = self.retried_batches = 0

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def batch(self, requests: int, inputs: int) -> None:
        with self._lock:
            self.batch_requests[requests] += 1
            self.batch_inputs[inputs] += 1

    def snapshot(self) -> dict:
        with self._lock:
            calls = sum(self.batch_inputs.values())
            return {"requests": self.requests, "model_calls": calls, "rejected_queue_full": self.rejected_queue_full,
                    "failed_requests": self.failed, "retried_batches": self.retried_batches,
                    "mean_batch_inputs": round(sum(k * v for k, v in self.batch_inputs.items()) / calls, 3)
                    if calls else None,
                    "batch_inputs": {str(k): v for k, v in sorted(self.batch_inputs.items())},
                    "batch_requests": {str(k): v for k, v in sorted(self.batch_requests.items())}}


class Batcher:
    """Loads the model on its worker thread (so the server listens meanwhile), then runs queued requests."""

    def __init__(self, load: Callable[[], Model], settings: BatchingSettings,
                 on_load_failure: Callable[[str], None] | None = None):
        self.settings, self.stats = settings, Stats()
        self.model: Model | None = None
        self.load_error: str | None = None
        self._load, self._on_load_failure = load, on_load_failure
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._previous_group = 1  # requests in the last batch: more than one means company is worth waiting for
        self._thread = threading.Thread(target=self._run, name="nlpseq-serve-worker", daemon=True)

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Let the worker finish its current call and end; queued requests get 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():  # still loading the model: it is a daemon thread, it ends with the process
            log.warning("the model worker did not stop within %.0f s", timeout)

    def submit(self, job: Job) -> None:
        """Queue ``job``; :class:`QueueFull` when ``queue_size`` requests wait already."""
        with self._cond:
            if self._stopping:
                raise QueueFull("server is shutting down")
            if len(self._queue) >= self.settings.queue_size:
                self.stats.count("rejected_queue_full")
                raise QueueFull(f"server busy: {len(self._queue)} requests queued (batching.queue_size); retry later")
            self._queue.append(job)
            self.stats.count("requests")
            self._cond.notify()

    # ----- the worker thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            model = self._load()
        except BaseException as e:  # noqa: B036 - any failure must reach /ready, not just end the thread
            self.load_error = f"model failed to load: {one_line(e)}"
            log.error("%s", self.load_error, exc_info=not isinstance(e, NlpseqError))
            if self._on_load_failure is not None:
                self._on_load_failure(self.load_error)
            return
        self.model = model
        log.info("model loaded; ready")
        while (group := self._next_group()) is not None:
            try:
                self._run_group(model, group)
            except Exception:  # a bug in splitting results: answer, never let the worker die
                log.exception("batch of %d requests failed", len(group))
                for job in group:
                    job.done(Outcome(500, error="internal error while running the batch"))
        with self._cond:
            left, self._queue = list(self._queue), deque()
        for job in left:
            job.done(Outcome(503, error="server is shutting down"))

    def _next_group(self) -> list[Job] | None:
        """The next requests to run together, or None when stopping: the oldest and those queued behind it;
        after a batch of several requests, also those arriving until ``max_wait_ms`` after the oldest."""
        settings = self.settings
        with self._cond:
            while True:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return None
                first = self._queue.popleft()
                if first.alive():
                    break
            group, size = [first], len(first.inputs)
            if not (settings.enabled and getattr(self.model, "mergeable", False)):
                return group
            wait = settings.max_wait_ms / 1000 if self._previous_group > 1 else 0.0
            deadline = first.enqueued + wait
            while size < settings.max_batch_size and not self._stopping:
                if self._queue:
                    if size + len(self._queue[0].inputs) > settings.max_batch_size:
                        break
                    job = self._queue.popleft()
                    if job.alive():
                        group.append(job)
                        size += len(job.inputs)
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._previous_group = len(group)
            return group

    def _run_group(self, model: Model, group: list[Job]) -> None:
        if len(group) == 1:
            group[0].done(self._call(model, group[0].inputs))
            return
        merged = [x for job in group for x in job.inputs]
        try:
            predictions = model.predict(merged)
            if len(predictions) != len(merged):
                raise RuntimeError(f"{len(predictions)} results for {len(merged)} inputs")
        except Exception as e:  # one bad input (or anything else): run each request alone, below
            log.debug("a batch of %d requests failed (%s); running them one by one", len(group), one_line(e))
            self.stats.count("retried_batches")
            for job in group:
                job.done(self._call(model, job.inputs))
            return
        self.stats.batch(len(group), len(merged))
        start = 0
        for job in group:
            job.done(Outcome(200, predictions=predictions[start:start + len(job.inputs)]))
            start += len(job.inputs)

    def _call(self, model: Model, inputs: list) -> Outcome:
        """One request alone: an :class:`NlpseqError` (input the predictor refuses) is a 422 with its message."""
        try:
            predictions = model.predict(inputs)
        except NlpseqError as e:
            self.stats.count("failed")
            return Outcome(422, error=str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        except Exception as e:
            self.stats.count("failed")
            log.exception("prediction failed")
            return Outcome(500, error=f"internal error: {one_line(e)}")
        self.stats.batch(1, len(inputs))
        return Outcome(200, predictions=list(predictions))
