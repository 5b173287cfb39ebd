"""Shared fixtures: the real config composed with Hydra and shrunk, and tiny corpora made in code."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

torch.set_num_threads(1)  # tiny models: one thread is as fast and never fights a background job

CONF = str(Path(__file__).resolve().parents[1] / "nlpseq" / "conf")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY_MODEL = [
    "model.embedding_dim=16", "model.char_embedding_dim=8", "model.char_hidden_size=8", "model.hidden_size=16",
    "trainer.batch_size=4", "trainer.eval_batch_size=8", "trainer.progress_bar=false", "trainer.patience=null",
    "trainer.num_threads=1",
]


def compose_config(overrides: list[str] = (), name: str = "train"):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name=name, overrides=list(overrides))


PERSONS = ["John Smith", "Mary Jones", "Peter Blackburn", "Anna Berg"]
PLACES = ["Paris", "Berlin", "New York", "Tokyo"]
ORGS = ["Reuters", "the EU Commission", "Acme Corp"]
VERBS = ["visited", "left", "called", "praised"]


def make_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences like 'John Smith visited Paris .' with IOB2 tags, deterministic for a seed."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        who, where = rng.choice(PERSONS).split(), rng.choice(PLACES + ORGS).split()
        kind = "LOC" if " ".join(where) in PLACES else "ORG"
        words = [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(who)]
        words.append((rng.choice(VERBS), "O"))
        words += [(w, "O") if w == "the" else (w, ("B-" if i == 0 or where[0] == "the" and i == 1 else "I-") + kind)
                  for i, w in enumerate(where)]
        words.append((".", "O"))
        out.append(words)
    return out


def write_conll_file(path: Path, sentences, columns: int = 4, docstart: bool = True) -> Path:
    lines = ["-DOCSTART- -X- -X- O", ""] if docstart and columns == 4 else []
    for s in sentences:
        for token, tag in s:
            lines.append(f"{token} NNP B-NP {tag}" if columns == 4 else f"{token} {tag}")
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_conll(tmp_path: Path) -> Path:
    """A data root with conll2003/{train,valid,test}.txt of made-up sentences."""
    folder = tmp_path / "data" / "conll2003"
    folder.mkdir(parents=True)
    for name, n, seed in (("train.txt", 60, 1), ("valid.txt", 12, 2), ("test.txt", 12, 3)):
        write_conll_file(folder / name, make_sentences(n, seed))
    return tmp_path / "data"


@pytest.fixture
def ner_config(tiny_conll):
    def make(*overrides: str):
        return compose_config(["task=ner", f"data.root={tiny_conll}", "data.download=false", *TINY_MODEL,
                               *overrides])

    return make


requires_shared_data = pytest.mark.skipif(not (SHARED_DATA / "conll2003").exists(),
                                          reason="../shared/data is not present")


POSITIVE = ["great", "wonderful", "witty", "gorgeous", "moving"]
NEGATIVE = ["boring", "awful", "dull", "tedious", "clumsy"]
FILLER = ["the", "film", "is", "a", "story", "and", "quite", "plot", "acting", "really"]


def make_reviews(n: int, seed: int) -> list[tuple[str, str]]:
    """``(label, text)`` pairs: label 1 texts carry a positive word, label 0 a negative one."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.choice("01")
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 9))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label == "1" else NEGATIVE))
        out.append((label, " ".join(words) + " ."))
    return out


@pytest.fixture
def tiny_sst(tmp_path: Path) -> Path:
    """A data root with sst/stsa.binary.{train,dev,test} of made-up reviews."""
    folder = tmp_path / "data" / "sst"
    folder.mkdir(parents=True)
    for name, n, seed in (("stsa.binary.train", 80, 1), ("stsa.binary.dev", 20, 2), ("stsa.binary.test", 20, 3)):
        (folder / name).write_text("".join(f"{label} {text}\n" for label, text in make_reviews(n, seed)))
    return tmp_path / "data"


TINY_CLASSIFIER = ["model.embedding_dim=16", "model.hidden_size=16", "trainer.batch_size=8",
                   "trainer.eval_batch_size=16", "trainer.progress_bar=false", "trainer.patience=null",
                   "trainer.ema_decay=null", "trainer.num_threads=1"]


@pytest.fixture
def sentiment_config(tiny_sst):
    def make(*overrides: str):
        return compose_config(["task=sentiment", f"data.root={tiny_sst}", "data.download=false", *TINY_CLASSIFIER,
                               *overrides])

    return make
