"""nlpseq-serve's batching queue (nlpseq/serve_batching.py) with a fake model: merging, waiting, a full queue,
bad inputs in a merged call, crashes."""

from __future__ import annotations

import threading
import time

import pytest

from nlpseq.errors import NlpseqError
from nlpseq.serve_batching import Batcher, BatchingSettings, Job, Outcome, QueueFull


# ----- the batching queue, with a fake model ------------------------------------------------------------
class FakeModel:
    """Upper-cases its inputs; the first call waits for :meth:`release` (so that requests queue behind it);
    "bad" is refused as a user error and "crash" raises like a bug."""

    mergeable = True

    def __init__(self, block_first: bool = True):
        self.calls: list[list] = []
        self.in_call, self._gate = threading.Event(), threading.Event()
        if not block_first:
            self._gate.set()

    def release(self) -> None:
        self._gate.set()

    def predict(self, inputs: list) -> list:
        self.calls.append(list(inputs))
        self.in_call.set()
        assert self._gate.wait(10)
        if "bad" in inputs:
            raise NlpseqError(f"input {inputs.index('bad') + 1} is bad")
        if "crash" in inputs:
            raise RuntimeError("boom")
        return [x.upper() for x in inputs]


class Answer:
    def __init__(self):
        self.event, self.outcome = threading.Event(), None

    def __call__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.event.set()

    def get(self) -> Outcome:
        assert self.event.wait(10), "no answer"
        return self.outcome


def ask(batcher: Batcher, inputs: list, alive=lambda: True) -> Answer:
    answer = Answer()
    batcher.submit(Job(inputs, answer, alive))
    return answer


def started(model: FakeModel, **settings) -> Batcher:
    batcher = Batcher(lambda: model, BatchingSettings(**{"max_wait_ms": 0, **settings}))
    batcher.start()
    deadline = time.monotonic() + 10
    while not batcher.ready:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    return batcher


def test_requests_queued_behind_a_running_batch_run_as_one_and_get_their_own_results():
    model = FakeModel()
    batcher = started(model)
    first = ask(batcher, ["a"])
    assert model.in_call.wait(5)
    later = [ask(batcher, ["b", "c"]), ask(batcher, ["d"]), ask(batcher, ["e", "f", "g"])]
    model.release()
    assert first.get() == Outcome(200, ["A"])
    assert [a.get().predictions for a in later] == [["B", "C"], ["D"], ["E", "F", "G"]]
    assert model.calls == [["a"], ["b", "c", "d", "e", "f", "g"]]
    stats = batcher.stats.snapshot()
    assert stats["batch_requests"] == {"1": 1, "3": 1} and stats["batch_inputs"] == {"1": 1, "6": 1}
    batcher.stop()


def test_one_bad_input_fails_only_its_own_request():
    model = FakeModel()
    batcher = started(model)
    ask(batcher, ["a"])
    assert model.in_call.wait(5)
    good, bad, other = ask(batcher, ["b"]), ask(batcher, ["x", "bad"]), ask(batcher, ["c"])
    model.release()
    assert good.get() == Outcome(200, ["B"]) and other.get() == Outcome(200, ["C"])
    assert bad.get() == Outcome(422, error="input 2 is bad")
    assert model.calls[1:] == [["b", "x", "bad", "c"], ["b"], ["x", "bad"], ["c"]]
    assert batcher.stats.snapshot()["retried_batches"] == 1
    batcher.stop()


def test_a_crashing_model_answers_500_and_the_worker_goes_on():
    batcher = started(FakeModel(block_first=False))
    assert ask(batcher, ["crash"]).get() == Outcome(500, error="internal error: RuntimeError: boom")
    assert ask(batcher, ["ok"]).get() == Outcome(200, ["OK"])
    batcher.stop()


@pytest.mark.parametrize("settings,mergeable,expected", [
    ({"max_batch_size": 3}, True, [["a"], ["b", "c"], ["d", "e", "f"]]),  # b,c + d,e would be 4 > 3
    ({"enabled": False}, True, [["a"], ["b", "c"], ["d", "e"], ["f"]]),
    ({}, False, [["a"], ["b", "c"], ["d", "e"], ["f"]]),  # a forecaster: one history per call
])
def test_batch_limits(settings, mergeable, expected):
    model = FakeModel()
    model.mergeable = mergeable
    batcher = started(model, **settings)
    answers = [ask(batcher, ["a"])]
    assert model.in_call.wait(5)
    answers += [ask(batcher, ["b", "c"]), ask(batcher, ["d", "e"]), ask(batcher, ["f"])]
    model.release()
    assert [a.get().status for a in answers] == [200] * 4
    assert model.calls == expected
    batcher.stop()


def test_after_a_batch_with_company_the_oldest_request_waits_up_to_max_wait_ms_for_more():
    model = FakeModel()
    batcher = started(model, max_wait_ms=5000, max_batch_size=2)
    ask(batcher, ["a"])
    assert model.in_call.wait(5)
    pair = [ask(batcher, ["b"]), ask(batcher, ["c"])]
    model.release()
    assert [a.get().predictions for a in pair] == [["B"], ["C"]]  # a batch of two: company is likely
    first = ask(batcher, ["d"])
    time.sleep(0.05)
    second = ask(batcher, ["e"])  # joins; the batch is full, so it runs at once instead of after 5 s
    assert first.get().predictions == ["D"] and second.get().predictions == ["E"]
    assert model.calls == [["a"], ["b", "c"], ["d", "e"]]
    batcher.stop()


def test_a_lone_client_is_not_kept_waiting_for_company():
    model = FakeModel(block_first=False)
    batcher = started(model, max_wait_ms=5000)
    start = time.monotonic()
    for text in ("a", "b", "c"):
        assert ask(batcher, [text]).get().predictions == [text.upper()]
    assert time.monotonic() - start < 4
    batcher.stop()


def test_a_full_queue_refuses_at_once_and_abandoned_requests_are_skipped():
    model = FakeModel()
    batcher = started(model, queue_size=2)
    first = ask(batcher, ["a"])
    assert model.in_call.wait(5)
    abandoned, kept = ask(batcher, ["gone"], alive=lambda: False), ask(batcher, ["b"])
    with pytest.raises(QueueFull, match=r"server busy: 2 requests queued \(batching.queue_size\); retry later"):
        ask(batcher, ["c"])
    model.release()
    assert first.get().status == kept.get().status == 200
    assert model.calls == [["a"], ["b"]] and not abandoned.event.is_set()
    assert batcher.stats.snapshot()["rejected_queue_full"] == 1
    batcher.stop()


def test_stop_finishes_the_running_batch_and_refuses_the_queued_ones():
    model = FakeModel()
    batcher = started(model)
    running = ask(batcher, ["a"])
    assert model.in_call.wait(5)
    queued = ask(batcher, ["b"])
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    time.sleep(0.05)
    model.release()
    stopper.join(10)
    assert running.get() == Outcome(200, ["A"])
    assert queued.get() == Outcome(503, error="server is shutting down")
    with pytest.raises(QueueFull, match="shutting down"):
        ask(batcher, ["c"])


def test_a_failed_load_is_reported():
    failures = []

    def load():
        raise NlpseqError("checkpoint x.pt not found")

    batcher = Batcher(load, BatchingSettings(), on_load_failure=failures.append)
    batcher.start()
    batcher.stop()
    assert not batcher.ready
    assert batcher.load_error == failures[0] == "model failed to load: NlpseqError: checkpoint x.pt not found"


