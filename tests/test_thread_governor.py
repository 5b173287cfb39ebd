"""The thread count re-decided during training, driven by a simulated machine whose timing table says how fast
each count trains when the machine is idle and when another process holds a core."""

from __future__ import annotations

import pytest
import torch

from nlpseq.threads import ThreadGovernor, fastest, thread_governor

# tokens/s of one training by thread count: idle, 2 threads gain 40%; shared, they collapse to a third of 1 thread
RATES = {"idle": {1: 1000.0, 2: 1400.0}, "shared": {1: 950.0, 2: 330.0}}
TOKENS_PER_STEP = 400


class Machine:
    """Runs steps at the speed of ``RATES[load][threads]``; the governor sets ``threads`` through ``set_count``."""

    def __init__(self, threads: int):
        self.threads, self.load, self.clock, self.tokens = threads, "idle", 0.0, 0.0

    def set_count(self, n: int) -> None:
        self.threads = n

    def run(self, governor: ThreadGovernor, seconds: float) -> float:
        """Train ``seconds`` of simulated time; returns the tokens/s over it."""
        start, tokens = self.clock, 0.0
        while self.clock - start < seconds:
            step = TOKENS_PER_STEP / RATES[self.load][self.threads]
            self.clock += step
            tokens += TOKENS_PER_STEP
            governor.step_done(TOKENS_PER_STEP, step)
        return tokens / (self.clock - start)


def test_a_shared_core_moves_training_to_one_thread_and_back():
    machine = Machine(threads=2)  # start-up chose 2 threads on the idle machine
    governor = ThreadGovernor([1, 2], 2, set_count=machine.set_count)
    idle = machine.run(governor, 600)
    assert machine.threads == 2 and governor.switches == 0
    assert idle >= 0.97 * RATES["idle"][2]  # probing the other count costs under 3% of an idle machine's speed

    machine.load = "shared"  # a job starts on the other core: 2 threads collapse
    first_minute = machine.run(governor, 60)
    assert machine.threads == 1 and governor.switches == 1
    shared = machine.run(governor, 1200)
    assert shared >= 0.97 * RATES["shared"][1]  # as fast as one thread, less the probes of 2 threads
    assert first_minute > 2 * RATES["shared"][2]  # the start-up choice alone would stay collapsed

    machine.load = "idle"  # the other job ends
    machine.run(governor, 300)
    assert machine.threads == 2 and governor.switches == 2


def test_a_steady_machine_is_probed_less_and_less_often():
    machine = Machine(threads=2)
    governor = ThreadGovernor([1, 2], 2, interval=10, max_interval=120, set_count=machine.set_count)
    machine.run(governor, 60)
    assert governor.interval > 10
    machine.run(governor, 600)
    assert governor.interval == 120


def test_small_differences_do_not_switch():
    assert fastest({1: 1000.0, 2: 1040.0}, keep=1, margin=0.95) == 1  # 4% better: noise, keep
    assert fastest({1: 1000.0, 2: 1040.0}, keep=2, margin=0.95) == 2
    assert fastest({1: 1000.0, 2: 1100.0}, keep=1, margin=0.95) == 2
    assert fastest({1: 1000.0, 2: 330.0}, keep=2, margin=0.95) == 1


def test_only_auto_on_a_cpu_with_spare_cores_is_governed(monkeypatch):
    monkeypatch.setattr("nlpseq.threads.available_cores", lambda: 2)
    cpu = torch.device("cpu")
    assert thread_governor(1, cpu) is None and thread_governor("2", cpu) is None and thread_governor(None, cpu) is None
    assert thread_governor("auto", torch.device("cuda", 0)) is None
    assert thread_governor("auto", cpu, local_processes=2) is None  # one core per process: nothing to choose
    assert thread_governor("auto", cpu).candidates == [1, 2]


@pytest.mark.parametrize("load", ["idle", "shared"])
def test_never_worse_than_the_best_fixed_count(load):
    """Over a long training, auto is within 3% of the best fixed count, whichever count it started with."""
    best = max(RATES[load].values())
    for start in (1, 2):
        machine = Machine(threads=start)
        machine.load = load
        governor = ThreadGovernor([1, 2], start, set_count=machine.set_count)
        assert machine.run(governor, 3600) >= 0.97 * best


def test_a_thread_setting_that_is_not_a_count_is_named():
    from nlpseq.errors import ConfigError
    from nlpseq.threads import set_threads

    with pytest.raises(ConfigError, match="num_threads must be an integer >= 1 or 'auto', got 'many'"):
        set_threads("many", key="num_threads")
