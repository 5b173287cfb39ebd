"""The long-memory study: the generated adding / copy / order problems and their memoryless levels, the recurrent
probe, ‖∂L/∂h_t‖ per time step against autograd on an injected state, the task's training contract through
save -> load -> predict, and ``scripts/study.py`` end to end on tiny settings."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nlpseq
from nlpseq.data.memory import (
    COPY_BLANK,
    COPY_DELIMITER,
    COPY_RECALL,
    COPY_SYMBOLS,
    KINDS,
    ORDER_B,
    ORDER_E,
    ORDER_X,
    ORDER_Y,
    VOCABULARY,
    chance,
    generate,
    one_hot_inputs,
)
from nlpseq.errors import NlpseqError
from nlpseq.gradient_flow import flow_ratio, state_gradient_norms, unrolled_cells
from nlpseq.models.memory import MemoryModel
from nlpseq.tasks.common import Objective
from nlpseq.tasks.memory import ORDER_CLASSES, SIZES, MemoryBatch, MemoryTask, memory_loss
from nlpseq.trainer import train
from tests.conftest import compose_config
from tests.test_reliability_inputs import run_inline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_MEMORY = ["task=memory", "data.length=10", "data.train_size=64", "data.dev_size=16", "data.test_size=24",
               "model.hidden_size=8", "trainer.max_steps=4", "trainer.eval_every_steps=2", "trainer.batch_size=16",
               "trainer.eval_batch_size=8", "trainer.num_threads=1", "trainer.progress_bar=false"]


def tiny_config(kind: str, *overrides: str):
    return compose_config([*TINY_MEMORY, f"data={kind}", *overrides])


# --- the generators ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, length, steps, input_shape, inputs_dtype, target_shape, targets_dtype", [
    ("adding", 12, 12, (5, 12, 2), torch.float32, (5,), torch.float32),
    ("copy", 7, 27, (5, 27), torch.long, (5, 27), torch.long),
    ("order", 20, 20, (5, 20), torch.long, (5,), torch.long),
])
def test_shapes_and_dtypes(kind, length, steps, input_shape, inputs_dtype, target_shape, targets_dtype):
    examples = generate(kind, 5, length, seed=0)
    assert examples.kind == kind and len(examples) == 5
    assert tuple(examples.inputs.shape) == input_shape and examples.inputs.dtype == inputs_dtype
    assert tuple(examples.targets.shape) == target_shape and examples.targets.dtype == targets_dtype
    features = SIZES[kind][0]
    assert features == (2 if kind == "adding" else VOCABULARY[kind])
    network_input = one_hot_inputs(examples)
    assert tuple(network_input.shape) == (5, steps, features) and network_input.dtype == torch.float32
    rows = torch.tensor([3, 1])
    assert torch.equal(one_hot_inputs(examples, rows), network_input[rows])
    if kind != "adding":  # one-hot: a single 1 per step, at the symbol's id
        assert torch.equal(network_input.sum(-1), torch.ones(5, steps))
        assert torch.equal(network_input.argmax(-1), examples.inputs)


@pytest.mark.parametrize("kind, length", [("adding", 16), ("copy", 5), ("order", 30)])
def test_same_seed_same_examples(kind, length):
    first, again, other = generate(kind, 50, length, 7), generate(kind, 50, length, 7), generate(kind, 50, length, 8)
    assert torch.equal(first.inputs, again.inputs) and torch.equal(first.targets, again.targets)
    assert not torch.equal(first.inputs, other.inputs)


@pytest.mark.parametrize("length", [2, 3, 11, 100])
def test_adding_markers_and_sums(length):
    examples = generate("adding", 500, length, seed=1)
    values, markers = examples.inputs[..., 0], examples.inputs[..., 1]
    assert bool(((values >= 0) & (values < 1)).all())
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    half = length // 2
    assert torch.equal(markers[:, :half].sum(1), torch.ones(500))  # exactly one marker in each half
    assert torch.equal(markers[:, half:].sum(1), torch.ones(500))
    torch.testing.assert_close(examples.targets, (values * markers).sum(1))
    first, second = markers[:, :half].argmax(1), half + markers[:, half:].argmax(1)
    rows = torch.arange(500)
    torch.testing.assert_close(examples.targets, values[rows, first] + values[rows, second])
    if length == 100:  # the markers go anywhere in their half
        assert set(first.tolist()) == set(range(half)) and set(second.tolist()) == set(range(half, length))


@pytest.mark.parametrize("length", [1, 2, 13])
def test_copy_layout(length):
    examples = generate("copy", 300, length, seed=2)
    inputs, targets = examples.inputs, examples.targets
    steps = length + 2 * COPY_RECALL
    assert inputs.shape[1] == steps == targets.shape[1]
    symbols = inputs[:, :COPY_RECALL]
    assert bool(((symbols >= 1) & (symbols <= COPY_SYMBOLS)).all())
    assert set(symbols.unique().tolist()) == set(range(1, COPY_SYMBOLS + 1))
    delimiter = COPY_RECALL + length - 1
    assert bool((inputs[:, delimiter] == COPY_DELIMITER).all())
    rest = torch.ones(steps, dtype=torch.bool)
    rest[:COPY_RECALL] = False
    rest[delimiter] = False
    assert bool((inputs[:, rest] == COPY_BLANK).all())  # the T - 1 blanks and the 10 after the delimiter
    assert rest.sum() == length - 1 + COPY_RECALL
    assert torch.equal(targets[:, -COPY_RECALL:], symbols)
    assert bool((targets[:, :-COPY_RECALL] == COPY_BLANK).all())


def window(length: int, low: float, high: float) -> set[int]:
    """The positions the order problem's docstring allows: [max(1, round(low * T)), round(high * T)]."""
    start = max(1, round(low * length))
    return set(range(start, max(round(high * length), start) + 1))


@pytest.mark.parametrize("length", [10, 37, 100])
def test_order_layout_and_classes(length):
    n = 2000
    examples = generate("order", n, length, seed=3)
    inputs, targets = examples.inputs, examples.targets
    assert bool((inputs[:, 0] == ORDER_B).all()) and bool((inputs[:, -1] == ORDER_E).all())
    marked = (inputs == ORDER_X) | (inputs == ORDER_Y)
    assert torch.equal(marked.sum(1), torch.full((n,), 2))  # exactly two X/Y per sequence
    others = inputs[:, 1:-1][~marked[:, 1:-1]]
    assert bool(((others >= 0) & (others <= 3)).all())  # everything else a, b, c or d
    positions = marked.nonzero()[:, 1].view(n, 2)
    early, late = positions[:, 0], positions[:, 1]
    assert set(early.tolist()) == window(length, 0.1, 0.2)  # every position of each window occurs, no other
    assert set(late.tolist()) == window(length, 0.5, 0.6)
    if length == 100:
        assert window(length, 0.1, 0.2) == set(range(10, 21)) and window(length, 0.5, 0.6) == set(range(50, 61))
    rows = torch.arange(n)
    first, second = inputs[rows, early] - ORDER_X, inputs[rows, late] - ORDER_X  # 0: X, 1: Y
    assert torch.equal(targets, 2 * first + second)
    for row in range(20):
        letters = "".join("XY"[int(inputs[row, p]) - ORDER_X] for p in positions[row])
        assert ORDER_CLASSES[int(targets[row])] == letters


@pytest.mark.parametrize("kind, too_short, shortest", [("adding", 1, 2), ("copy", 0, 1), ("order", 9, 10)])
def test_bad_kind_and_too_short_raise(kind, too_short, shortest):
    with pytest.raises(ValueError, match="must be one of"):
        generate("addition", 4, 20, 0)
    with pytest.raises(ValueError, match=f"T >= {shortest}"):
        generate(kind, 4, too_short, 0)
    assert len(generate(kind, 4, shortest, 0)) == 4


# --- the memoryless levels ---------------------------------------------------------------------------------------


def test_adding_chance_is_one_sixth():
    examples = generate("adding", 20000, 50, seed=4)
    mse = float((examples.targets - 1.0).pow(2).mean())  # always predicting 1
    name, level = chance("adding", 50)
    assert name == "mse" and level == pytest.approx(1 / 6)
    assert mse == pytest.approx(level, abs=0.01)
    assert float(examples.targets.mean()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("length", [1, 30, 100])
def test_copy_chance_is_the_memoryless_cross_entropy(length):
    examples = generate("copy", 2000, length, seed=5)
    steps = length + 2 * COPY_RECALL
    outputs = COPY_SYMBOLS + 1
    # knowing only the layout: blank for sure at the first T + 10 steps, any of the 8 symbols at the last 10
    probabilities = torch.zeros(steps, outputs)
    probabilities[:-COPY_RECALL, COPY_BLANK] = 1.0
    probabilities[-COPY_RECALL:, 1:] = 1.0 / COPY_SYMBOLS
    logits = probabilities.log().expand(len(examples), -1, -1)
    per_step = -logits.gather(-1, examples.targets.unsqueeze(-1)).squeeze(-1)
    assert bool(torch.isfinite(per_step).all())  # every target is possible for this predictor
    name, level = chance("copy", length)
    assert name == "loss" and level == pytest.approx(10 * math.log(8) / (length + 20))
    assert float(per_step.mean()) == pytest.approx(level, rel=1e-5)
    # the task's loss (mean cross-entropy per step) gives the same number for these outputs
    logits = torch.where(torch.isinf(logits), torch.full_like(logits, -1e4), logits)
    assert float(memory_loss("copy", logits, examples.targets)) == pytest.approx(level, rel=1e-5)
    # and a memoryless guess recalls 1 symbol in 8: each symbol is as frequent
    counts = torch.bincount(examples.targets[:, -COPY_RECALL:].reshape(-1), minlength=outputs)[1:].float()
    assert bool(((counts / counts.sum() - 1 / 8).abs() < 0.01).all())


def test_order_classes_are_balanced():
    examples = generate("order", 20000, 40, seed=6)
    share = torch.bincount(examples.targets, minlength=4).float() / len(examples)
    assert chance("order", 40) == ("accuracy", 25.0)
    assert bool(((share - 0.25).abs() < 0.015).all()), share


# --- gradient flow -----------------------------------------------------------------------------------------------


def probe_and_loss(cell: str, layers: int, per_step: bool, steps: int = 6, batch: int = 3):
    """A tiny probe, inputs and a loss: per step, cross-entropy of the last 3 steps (copy-like); else MSE."""
    torch.manual_seed(11)
    model = MemoryModel(3, 5, 4 if per_step else 1, cell, layers, per_step=per_step).eval()
    inputs = torch.randn(batch, steps, 3)
    if per_step:
        targets = torch.randint(0, 4, (batch, 3))

        def loss_fn(outputs):
            return memory_loss("copy", outputs[:, -3:], targets)
    else:
        targets = torch.randn(batch)

        def loss_fn(outputs):
            return memory_loss("adding", outputs, targets)
    return model, inputs, loss_fn


def injected_state_norm(model: MemoryModel, inputs: torch.Tensor, loss_fn, k: int) -> torch.Tensor:
    """‖∂L/∂h_k‖ (per example, batch mean) by autograd on a leaf top-layer state injected at step k (0-based): the
    fused top layer runs to step k, is restarted from the leaf on the later steps, and the readout sees the earlier
    outputs (detached), the leaf and the later outputs."""
    rnns = model.encoder.forward_rnns
    x = inputs
    with torch.no_grad():
        for rnn in rnns[:-1]:  # the lower layers do not depend on the top layer's state
            x, _ = rnn(x)
    top = rnns[-1]
    before, state = top(x[:, :k + 1])
    if isinstance(state, tuple):
        h, c = state[0].detach().requires_grad_(), state[1].detach().requires_grad_()
        start = (h, c)
    else:
        h = state.detach().requires_grad_()
        start = h
    parts = [before[:, :k].detach(), h[0].unsqueeze(1)]
    if k + 1 < x.size(1):  # a fused RNN refuses an empty sequence
        parts.append(top(x[:, k + 1:], start)[0])
    states = torch.cat(parts, dim=1)
    (gradient,) = torch.autograd.grad(loss_fn(model.readout(states)), h)
    return gradient[0].norm(dim=-1).mean()


@pytest.mark.parametrize("per_step", [False, True], ids=["last", "per_step"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_gradient_norms_equal_autograd_on_an_injected_state(cell, layers, per_step):
    model, inputs, loss_fn = probe_and_loss(cell, layers, per_step)
    norms, loss = state_gradient_norms(model, inputs, loss_fn)
    assert norms.shape == (inputs.size(1),) and not norms.requires_grad
    assert loss == pytest.approx(float(loss_fn(model(inputs)).detach()), rel=1e-5)  # unrolled = fused
    assert all(p.grad is None for p in model.parameters())  # the parameters get no gradient
    expected = torch.stack([injected_state_norm(model, inputs, loss_fn, k) for k in range(inputs.size(1))])
    torch.testing.assert_close(norms, expected, rtol=1e-4, atol=1e-7)
    assert bool((norms > 0).all())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_unrolled_cells_share_weights_and_match_the_fused_encoder(cell):
    model, inputs, _ = probe_and_loss(cell, 2, per_step=True)
    cells = unrolled_cells(model.encoder)
    assert len(cells) == 2
    for unrolled, rnn in zip(cells, model.encoder.forward_rnns):
        assert unrolled.weight_hh is rnn.weight_hh_l0 and unrolled.bias_ih is rnn.bias_ih_l0
    states, outputs = [None, None], []
    for t in range(inputs.size(1)):
        x = inputs[:, t]
        for i, unrolled in enumerate(cells):
            states[i] = unrolled(x, states[i])
            x = states[i][0] if isinstance(states[i], tuple) else states[i]
        outputs.append(x)
    fused, _ = model.encoder.run(inputs)
    torch.testing.assert_close(torch.stack(outputs, dim=1), fused, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.readout(torch.stack(outputs, dim=1)), model(inputs), rtol=1e-5, atol=1e-6)


def test_flow_ratio():
    assert flow_ratio(torch.tensor([2.0, 4.0, 8.0])) == pytest.approx(0.25)
    assert flow_ratio(torch.tensor([3.0])) == pytest.approx(1.0)
    assert math.isnan(flow_ratio(torch.tensor([1.0, 0.0])))


# --- batches -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_gives_each_example_what_it_gets_alone(kind):
    task = MemoryTask.from_config(tiny_config(kind, "model.cell=gru", "model.layers=2"))
    torch.manual_seed(0)
    model = task.build_model().eval()
    test = task.split("test")
    batch = task.batch(test, torch.arange(6))
    with torch.no_grad():
        outputs = model(batch.inputs)
        for i in range(6):
            alone = task.batch(test, torch.tensor([i]))
            single = model(alone.inputs)
            torch.testing.assert_close(single, outputs[i:i + 1], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(memory_loss(kind, single, alone.targets),
                                       memory_loss(kind, outputs[i:i + 1], batch.targets[i:i + 1]),
                                       rtol=1e-5, atol=1e-6)
    # the summed statistics do not depend on the evaluation batch size
    rows = torch.arange(len(test))
    together = task.statistics(model, test, rows)
    task.cfg.trainer.eval_batch_size = 1
    one_by_one = task.statistics(model, test, rows)
    assert together.keys() == one_by_one.keys()
    for key in together:
        assert together[key] == pytest.approx(one_by_one[key], rel=1e-5, abs=1e-6), key


# --- the task: training contract, checkpoint, predictor ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, dict]:
    """Per problem: a tiny probe trained 4 steps on T = 10 (the ``train`` summary)."""
    root = tmp_path_factory.mktemp("memory_runs")
    return {kind: train(MemoryTask.from_config(tiny_config(kind)), tiny_config(kind), root / kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_task_contract(kind):
    task = MemoryTask.from_config(tiny_config(kind))
    assert task.kind == kind and task.length == 10 and task.name == "memory"
    assert task.metric == ("mse" if kind == "adding" else "accuracy")
    assert task.higher_is_better == (kind != "adding")
    steps = 30 if kind == "copy" else 10
    assert task.train_lengths() == [steps] * 64
    assert torch.equal(task.split("dev").inputs, MemoryTask.from_config(tiny_config(kind)).split("dev").inputs)
    assert not torch.equal(task.split("dev").inputs[:16], task.split("test").inputs[:16])
    batch = task.collate([0, 5, 7], epoch=0)
    assert isinstance(batch, MemoryBatch) and batch.num_tokens == 3 * steps
    assert tuple(batch.inputs.shape) == (3, steps, SIZES[kind][0])
    assert torch.equal(batch.targets, task.split("train").targets[[0, 5, 7]])
    torch.manual_seed(0)
    model = task.build_model()
    assert model.per_step == (kind == "copy") and model.head.out_features == SIZES[kind][1]
    objective = task.objective(model)
    assert isinstance(objective, Objective)
    loss = objective(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    stats = task.validation_stats(model)
    assert stats["examples"] == 16
    shards = [task.validation_stats(model, rank, 2) for rank in range(2)]
    assert sum(s["examples"] for s in shards) == 16
    scores = task.scores(stats)
    if kind == "adding":
        assert set(scores) == {"mse"} and scores["mse"] >= 0
        assert stats["squared_error"] / 16 == pytest.approx(scores["mse"])
    else:
        assert set(scores) == {"accuracy", "loss"} and 0 <= scores["accuracy"] <= 100
        assert stats["answers"] == 16 * (COPY_RECALL if kind == "copy" else 1)
    assert task.state() == {}


def test_trained_checkpoints_load_and_predict(trained):
    for kind, summary in trained.items():
        best = Path(summary["best_checkpoint"])
        assert best.name == "best.pt" and best.is_file() and summary["steps"] == 4
        assert summary["metric"] == ("mse" if kind == "adding" else "accuracy")
        raw = torch.load(best, weights_only=True)  # plain data only
        assert raw["task"] == "memory"
        predictor = nlpseq.load(best)
        task = predictor.task
        assert task.kind == kind
        test = task.split("test")
        sequences = [test.inputs[i].tolist() for i in range(3)]
        results = predictor.predict(sequences)
        assert len(results) == 3
        assert predictor.predict([json.dumps(sequences[1])]) == [results[1]]  # a JSON line is the same input
        for result in results:
            if kind == "adding":
                assert set(result) == {"sum"} and isinstance(result["sum"], float)
            elif kind == "copy":
                recalled = result["recalled"]
                assert set(result) == {"recalled"} and len(recalled) == COPY_RECALL
                assert all(isinstance(s, int) and 0 <= s <= COPY_SYMBOLS for s in recalled)
            else:
                assert set(result) == {"order"} and result["order"] in ORDER_CLASSES
        with torch.no_grad():
            outputs = predictor.model(one_hot_inputs(test, torch.arange(3)))
        if kind == "adding":
            assert [r["sum"] for r in results] == pytest.approx(outputs.squeeze(-1).tolist(), abs=1e-5)
        elif kind == "copy":
            assert [r["recalled"] for r in results] == outputs.argmax(-1)[:, -COPY_RECALL:].tolist()
        else:
            assert [r["order"] for r in results] == [ORDER_CLASSES[c] for c in outputs.argmax(-1).tolist()]
        name, level = chance(kind, 10)
        report = predictor.report(predictor.read_examples("test", None, None), None)
        assert report.startswith(f"{kind}, T=10: ") and f"memoryless baseline: {name} {level:.4f}" in report


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_script_prints_the_memoryless_baseline(trained, kind):
    done = run_inline("evaluate.py", f"checkpoint={trained[kind]['best_checkpoint']}", "split=test")
    assert done.returncode in (0, None), done.stderr
    name, level = chance(kind, 10)
    assert f"memoryless baseline: {name} {level:.4f}" in done.stdout
    assert "scores written to" in done.stdout  # RUN/scores/test.json, for summarize.py


# --- the model's initialisation ----------------------------------------------------------------------------------


def test_forget_bias_sets_the_lstm_forget_gates():
    cfg = tiny_config("order", "model.cell=lstm", "model.layers=2", "model.hidden_size=4", "model.forget_bias=2.5")
    model = MemoryTask.from_config(cfg).build_model()
    for rnn in model.encoder.forward_rnns:  # gate order: input, forget, cell, output
        assert torch.equal(rnn.bias_ih_l0[4:8], torch.full((4,), 2.5))
        assert torch.equal(rnn.bias_hh_l0[4:8], torch.zeros(4))
        assert not torch.equal(rnn.bias_ih_l0[:4], torch.full((4,), 2.5))  # the other gates keep theirs
    # another cell has no forget gate: the setting changes nothing
    states = []
    for bias in (1.0, 5.0):
        torch.manual_seed(3)
        states.append(MemoryModel(2, 4, 1, "gru", forget_bias=bias).state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_scale_multiplies_weight_hh(cell):
    models = []
    for scale in (1.0, 3.0):
        torch.manual_seed(5)
        cfg = tiny_config("adding", f"model.cell={cell}", "model.layers=2", f"model.recurrent_scale={scale}")
        models.append(MemoryTask.from_config(cfg).build_model())
    for plain, scaled in zip(models[0].encoder.forward_rnns, models[1].encoder.forward_rnns):
        torch.testing.assert_close(scaled.weight_hh_l0, 3.0 * plain.weight_hh_l0)
        assert torch.equal(scaled.weight_ih_l0, plain.weight_ih_l0)
        assert torch.equal(scaled.bias_hh_l0, plain.bias_hh_l0)
    assert torch.equal(models[0].head.weight, models[1].head.weight)
    assert isinstance(models[0].head, nn.Linear)


# --- the study end to end ----------------------------------------------------------------------------------------


def test_quick_study_end_to_end(tmp_path):
    out = tmp_path / "study"
    done = run_inline("study.py", "study=quick", "num_threads=1", "study.steps=20", "study.eval_every=10",
                      "study.lengths=[10]", "study.tasks=[adding,copy,order]", "study.cells=[rnn,gru]",
                      "study.explode_steps=10", "study.explode_length=8", "study.train_size=200",
                      "study.hidden_size=8", f"hydra.run.dir={out}")
    assert done.returncode in (0, None), done.stderr
    assert f"report: {out / 'report.md'}" in done.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| problem | T | metric | rnn | gru | memoryless |" in report
    assert "| problem | T | rnn init / trained | gru init / trained |" in report
    for problem, shown, level in (("adding", "MSE (lower is better)", "0.1667"), ("copy", "accuracy %", "12.5"),
                                  ("order", "accuracy %", "25")):
        assert any(line.startswith(f"| {problem} | 10 | {shown} | ") and line.endswith(f" | {level} |")
                   for line in report.splitlines()), problem
        assert sum(line.startswith(f"| {problem} | 10 | ") for line in report.splitlines()) == 2  # both tables
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = results["results"]
    assert {(r["problem"], r["cell"]) for r in rows} == {(p, c) for p in KINDS for c in ("rnn", "gru")}
    for r in rows:
        steps = 30 if r["problem"] == "copy" else 10
        assert len(r["flow_init"]) == steps == len(r["flow_trained"]) and r["steps"] == 20
        assert r["ratio_init"] == pytest.approx(r["flow_init"][0] / r["flow_init"][-1])
    assert set(results["clipping"]) == {"no clipping", "no clipping loss", "clipping at 1.0", "clipping at 1.0 loss"}
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([*(f"gradient_flow_{p}_T10.png" for p in KINDS), *(f"score_vs_T_{p}.png" for p in KINDS),
                           "clipping.png"])
    for name in pngs:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
        assert f"]({name})" in report


def test_study_with_a_too_short_length_is_one_error_line(tmp_path):
    done = run_inline("study.py", "num_threads=1", "study.tasks=[order]", "study.lengths=[8]",
                      "study.cells=[rnn]", f"hydra.run.dir={tmp_path / 'study'}")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and "T >= 10" in errors[0], done.stderr


def test_study_trains_side_by_side_with_the_same_results(tmp_path):
    """``study.jobs=2``: the trainings run as two train.py processes; the study then only measures them, and the
    scores equal those of the same study trained in its own process."""
    common = ["study=quick", "num_threads=1", "study.steps=12", "study.eval_every=6", "study.lengths=[10]",
              "study.tasks=[adding]", "study.cells=[rnn,gru]", "study.explode_steps=2", "study.explode_length=10",
              "study.train_size=100", "study.hidden_size=8"]
    scores = {}
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        done = run_inline("study.py", *common, f"study.jobs={jobs}", f"hydra.run.dir={out}")
        assert done.returncode in (0, None), done.stderr
        rows = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
        scores[jobs] = {r["cell"]: r["score"] for r in rows}
    assert (tmp_path / "jobs2" / "runs" / "adding_T10_gru_seed0" / "train.out").exists()
    assert scores[2] == pytest.approx(scores[1], rel=1e-5)


def test_bad_sequences_are_one_clear_error(trained):
    predictor = nlpseq.load(trained["copy"]["best_checkpoint"])
    for bad, message in (("[1, 2", "input 1 is not a JSON list of numbers: expected 30 symbol ids"),
                         ("[1, 2, 3]", "input 1 has shape (3,): this copy model takes 30 symbol ids"),
                         ([[11] * 30], "input 1 has a symbol outside 0..9"),
                         ([], "no input: nothing to predict")):
        with pytest.raises(NlpseqError, match=re.escape(message)):
            predictor.predict(bad if isinstance(bad, list) else [bad])
