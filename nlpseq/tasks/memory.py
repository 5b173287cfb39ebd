"""Long-memory problems (``data=adding|copy|order``) -> a recurrent probe -> MSE or recall accuracy, beside the
memoryless baseline. The examples are generated from a fixed seed per split, so dev and test never change."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from nlpseq.data.memory import (
    COPY_RECALL,
    COPY_SYMBOLS,
    VOCABULARY,
    MemoryExamples,
    chance,
    check_problem,
    generate,
    one_hot_inputs,
)
from nlpseq.errors import NlpseqError, check_choice
from nlpseq.inference import PredictorBase, evaluating
from nlpseq.models.memory import MemoryModel, build_memory_model
from nlpseq.tasks.common import SPLITS, Objective

SIZES = {"adding": (2, 1), "copy": (VOCABULARY["copy"], COPY_SYMBOLS + 1), "order": (VOCABULARY["order"], 4)}
"""problem -> (input features, outputs): copy emits blank or one of the 8 symbols, order one of 4 classes."""
ORDER_CLASSES = ("XX", "XY", "YX", "YY")


@dataclass
class MemoryBatch:
    inputs: torch.Tensor  # (batch, steps, features)
    targets: torch.Tensor  # (batch,) sums or classes, or (batch, steps) symbols

    @property
    def num_tokens(self) -> int:
        return self.inputs.shape[0] * self.inputs.shape[1]


def memory_loss(kind: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE of the sum (adding); mean cross-entropy per step (copy) or per sequence (order)."""
    if kind == "adding":
        return nn.functional.mse_loss(outputs.squeeze(-1), targets)
    return nn.functional.cross_entropy(outputs.reshape(-1, outputs.size(-1)), targets.reshape(-1))


class MemoryTask:
    """Generates the splits of one problem and length; ``metric`` is ``mse`` (adding) or ``accuracy``: percent of
    the recalled symbols (copy) or of the sequences (order) that are right."""

    name = "memory"

    def __init__(self, cfg: DictConfig):
        check_problem(str(cfg.data.problem), int(cfg.data.length))
        self.cfg, self.kind, self.length = cfg, str(cfg.data.problem), int(cfg.data.length)
        self.metric = "mse" if self.kind == "adding" else "accuracy"
        self.higher_is_better = self.kind != "adding"
        self._splits: dict[str, MemoryExamples] = {}

    @classmethod
    def from_config(cls, cfg: DictConfig) -> MemoryTask:
        return cls(cfg)

    @classmethod
    def from_state(cls, cfg: DictConfig, state: dict) -> MemoryTask:
        return cls(cfg)  # the data are generated from the config's seeds

    def state(self) -> dict:
        return {}

    def split(self, name: str) -> MemoryExamples:
        """The generated split ``name`` (``data.<name>_size`` examples from ``data.<name>_seed``)."""
        check_choice("split", name, SPLITS)
        if name not in self._splits:
            data = self.cfg.data
            self._splits[name] = generate(self.kind, int(data[f"{name}_size"]), self.length, int(data[f"{name}_seed"]))
        return self._splits[name]

    def build_model(self) -> MemoryModel:
        features, outputs = SIZES[self.kind]
        return build_memory_model(self.cfg.model, features, outputs, per_step=self.kind == "copy")

    def predictor(self, model: MemoryModel) -> MemoryPredictor:
        return MemoryPredictor(self, model)

    def train_lengths(self) -> list[int]:
        train = self.split("train")
        return [train.inputs.shape[1]] * len(train)

    def batch(self, examples: MemoryExamples, rows: torch.Tensor) -> MemoryBatch:
        return MemoryBatch(one_hot_inputs(examples, rows), examples.targets[rows])

    def collate(self, indices: list[int], epoch: int) -> MemoryBatch:
        return self.batch(self.split("train"), torch.tensor(indices))

    def loss(self, model: MemoryModel, batch: MemoryBatch) -> torch.Tensor:
        return memory_loss(self.kind, model(batch.inputs), batch.targets)

    def objective(self, model: MemoryModel) -> Objective:
        return Objective(model, self.loss)

    def statistics(self, model: MemoryModel, examples: MemoryExamples, rows: torch.Tensor) -> dict[str, float]:
        """Sums over ``rows`` of ``examples``: squared error (adding), or right answers and loss."""
        stats = {"examples": 0.0, "squared_error": 0.0, "right": 0.0, "answers": 0.0, "loss": 0.0}
        size = int(self.cfg.trainer.eval_batch_size)
        with evaluating(model) as device:
            for start in range(0, len(rows), size):
                batch = self.batch(examples, rows[start:start + size])
                outputs, targets = model(batch.inputs.to(device)).float().cpu(), batch.targets
                stats["examples"] += len(targets)
                stats["loss"] += float(memory_loss(self.kind, outputs, targets)) * len(targets)
                if self.kind == "adding":
                    stats["squared_error"] += float((outputs.squeeze(-1) - targets).pow(2).sum())
                    continue
                predicted = outputs.argmax(-1)
                if self.kind == "copy":  # only the recalled symbols count: the blanks are free
                    predicted, targets = predicted[:, -COPY_RECALL:], targets[:, -COPY_RECALL:]
                stats["right"] += float((predicted == targets).sum())
                stats["answers"] += float(targets.numel())
        return stats

    def validation_stats(self, model: MemoryModel, rank: int = 0, world_size: int = 1) -> dict[str, float]:
        dev = self.split("dev")
        return self.statistics(model, dev, torch.arange(len(dev))[rank::world_size])

    def scores(self, stats: dict[str, float]) -> dict[str, float]:
        n = max(stats["examples"], 1.0)
        if self.kind == "adding":
            return {"mse": stats["squared_error"] / n}
        return {"accuracy": 100.0 * stats["right"] / max(stats["answers"], 1.0), "loss": stats["loss"] / n}


class MemoryPredictor(PredictorBase):
    """``nlpseq.load(path).predict([[...]])``: one sequence per input (adding: ``[value, marker]`` pairs; copy and
    order: symbol ids), given as a list or a JSON line."""

    offers = ("predict(sequences)",)

    def __init__(self, task: MemoryTask, model: MemoryModel):
        self.task, self.model = task, model.eval()

    def read_examples(self, split: str | None, file: str | None, data_root: str | None) -> MemoryExamples:
        if file:
            raise NlpseqError("a memory model is scored on its generated splits: give split=, not file=")
        return self.task.split(split)

    def score(self, examples: MemoryExamples, output: str | None) -> tuple[dict[str, float], str]:
        task = self.task
        scores = task.scores(task.statistics(self.model, examples, torch.arange(len(examples))))
        name, level = chance(task.kind, task.length)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        return scores, f"{task.kind}, T={task.length}: {shown}; memoryless baseline: {name} {level:.4f}"

    def predict(self, sequences: list, **options) -> list[dict]:
        self.check_options(options, self.prediction_options)
        task = self.task
        examples = MemoryExamples(task.kind, self._inputs(sequences), torch.zeros(len(sequences)))
        with evaluating(self.model) as device:
            outputs = self.model(one_hot_inputs(examples).to(device)).float().cpu()
        if task.kind == "adding":
            return [{"sum": round(float(v), 6)} for v in outputs.squeeze(-1)]
        if task.kind == "copy":
            return [{"recalled": row[-COPY_RECALL:].tolist()} for row in outputs.argmax(-1)]
        return [{"order": ORDER_CLASSES[int(c)]} for c in outputs.argmax(-1)]

    def _inputs(self, sequences: list) -> torch.Tensor:
        """The sequences as one tensor; an :class:`NlpseqError` naming the input that is not JSON, not of the
        model's length or shape, or holds a symbol outside the problem's."""
        task = self.task
        steps = task.length + (20 if task.kind == "copy" else 0)
        shape, what = ((steps, 2), "[value, marker] pairs") if task.kind == "adding" else ((steps,), "symbol ids")
        rows = []
        for i, sequence in enumerate(sequences, start=1):
            try:
                value = json.loads(sequence) if isinstance(sequence, str) else sequence
                row = torch.tensor(value, dtype=torch.float32 if task.kind == "adding" else torch.long)
            except (ValueError, TypeError, RuntimeError):
                raise NlpseqError(f"input {i} is not a JSON list of numbers: expected {steps} {what}") from None
            if tuple(row.shape) != shape:
                raise NlpseqError(f"input {i} has shape {tuple(row.shape)}: this {task.kind} model takes {steps} "
                                  f"{what}")
            if task.kind != "adding" and not 0 <= int(row.min()) <= int(row.max()) < VOCABULARY[task.kind]:
                raise NlpseqError(f"input {i} has a symbol outside 0..{VOCABULARY[task.kind] - 1}")
            rows.append(row)
        if not rows:
            raise NlpseqError("no input: nothing to predict")
        return torch.stack(rows)

    @staticmethod
    def format_text(result: dict) -> str:
        return json.dumps(result) + "\n"
