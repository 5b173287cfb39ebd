"""Checkpoints written before the task contract (format 1) keep loading and predict exactly as they did.

``tests/fixtures/*_v1.pt`` are tiny models trained by nlpseq at commit f405317; ``predictions_v1.json`` holds
what that code predicted with them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nlpseq
from nlpseq.checkpoint import FORMAT_VERSION, load_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "predictions_v1.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("task", ["ner", "sentiment", "translation"])
def test_format_1_checkpoints_load_and_predict_the_same(task):
    path = FIXTURES / f"{task}_v1.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and "architecture" not in raw["config"]["model"]
    migrated = load_checkpoint(path)
    assert migrated["format_version"] == FORMAT_VERSION and migrated["config"]["model"]["architecture"]
    expected = EXPECTED[task]
    got = nlpseq.load(path).predict([e["text"] for e in expected])
    if task == "sentiment":
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        for g, e in zip(got, expected):
            assert g["probabilities"] == pytest.approx(e["probabilities"], abs=2e-6)
    else:
        assert got == expected
