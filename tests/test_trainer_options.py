"""Trainer options beyond the defaults: gradient accumulation and mixed precision (autocast, loss scaling)."""

from __future__ import annotations

import pytest
import torch

from nlpseq.errors import ConfigError
from nlpseq.optim import build_optimizer
from nlpseq.precision import Precision
from nlpseq.tasks import TASKS
from nlpseq.trainer import train, train_step

NO_DROPOUT = ("model.dropout=0", "model.word_dropout=0", "model.singleton_dropout=0")


def _model_and_batches(cfg):
    task = TASKS["ner"].from_config(cfg)
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = build_optimizer(model, cfg.trainer, torch.device("cpu"))
    return model, task.objective(model), optimizer, [task.collate([0, 1, 2], 0), task.collate([3, 4, 5, 6], 0)]


def test_accumulating_two_batches_is_one_step_on_the_mean_of_their_losses(ner_config):
    cfg = ner_config(*NO_DROPOUT)
    model, objective, optimizer, batches = _model_and_batches(cfg)
    loss, _ = train_step(objective, optimizer, batches)
    reference, ref_objective, ref_optimizer, _ = _model_and_batches(cfg)
    ref_optimizer.zero_grad()
    mean = (ref_objective(batches[0]) + ref_objective(batches[1])) / 2
    mean.backward()
    ref_optimizer.step()
    assert loss == pytest.approx(mean.item(), rel=1e-6)
    for (name, a), b in zip(model.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_accumulate_divides_the_steps_of_an_epoch(ner_config, tmp_path):
    plain = ner_config("trainer.max_epochs=1")
    doubled = ner_config("trainer.max_epochs=1", "trainer.accumulate=2")
    steps = [train(TASKS["ner"].from_config(c), c, tmp_path / str(i))["steps"] for i, c in enumerate((plain, doubled))]
    assert steps[1] == (steps[0] + 1) // 2


def test_bf16_autocast_trains_on_the_cpu(ner_config, tmp_path):
    cfg = ner_config("trainer.max_steps=6", "trainer.precision=bf16")
    assert train(TASKS["ner"].from_config(cfg), cfg, tmp_path)["steps"] == 6
    assert torch.load(tmp_path / "checkpoints/last.pt", weights_only=True)["scaler"] is None


def test_fp16_has_a_loss_scaler_and_needs_a_gpu():
    with pytest.raises(ConfigError, match="trainer.precision=fp16 needs a GPU"):
        Precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="trainer.precision must be 32, bf16 or fp16, got 16"):
        Precision(16, torch.device("cpu"))
    if torch.cuda.is_available():
        assert Precision("fp16", torch.device("cuda")).state_dict() is not None
