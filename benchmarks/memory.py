"""Peak memory of one side's training or inference, measured in a fresh process.

In the benchmark's own process the allocator keeps memory freed by earlier phases and reuses it without
growing, so a high-water mark there says little. A spawned child builds the task and both models, then
resets the kernel's high-water mark and runs only the side and phase asked for: the result is the memory
that phase adds on top of the data and the weights (activations, gradients, optimizer state).
"""

from __future__ import annotations

import multiprocessing as mp

from omegaconf import DictConfig, OmegaConf

from benchmarks.timing import peak_memory_mib


def measure(cfg: DictConfig, side: str, phase: str, steps: int, timeout: float = 600) -> float | None:
    """MiB that ``phase`` (``train`` or a batched-inference phase) of ``side`` (nlpseq|reference) adds."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(OmegaConf.to_yaml(cfg, resolve=True), side, phase, steps, queue))
    child.start()
    try:
        return queue.get(timeout=timeout)
    finally:
        child.join(timeout=10)


def _child(cfg_yaml: str, side: str, phase: str, steps: int, queue) -> None:
    import torch

    from benchmarks.suites import build_suite

    cfg = OmegaConf.create(cfg_yaml)
    torch.set_num_threads(1)  # memory does not depend on threads; one leaves the parent's cores alone
    suite = build_suite(cfg)
    chosen = suite.nlpseq if side == "nlpseq" else suite.reference
    if phase == "train":
        result = peak_memory_mib(lambda: [chosen.train_step() for _ in range(steps)])
    else:
        suite.sync_weights()  # the reference in eval mode, as in the timed inference
        with torch.inference_mode():
            result = peak_memory_mib(chosen.batched[phase])
    queue.put(result)
