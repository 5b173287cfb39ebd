"""Every training command README shows composes, and none stops on a time cap: a recipe's result must not depend
on how fast the machine is (``trainer.max_minutes`` stays a user option, off in every recipe)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import compose_config

README = Path(__file__).resolve().parents[1] / "README.md"
COMMAND = re.compile(r"(?:scripts/train\.py|nlpseq-train)((?:\s+(?:-m|\[[\w.]+=[^\s`|\]]*\]|[\w./+-]+=[^\s`|]*))*)")
OPTIONAL = re.compile(r"\[([\w.]+=[^\s`|\]]*)\]")  # README's [task.horizon=336]: the override, taken


def readme_recipes() -> list[tuple[str, ...]]:
    """The overrides of each ``scripts/train.py`` / ``nlpseq-train`` command in README, a sweep's first value
    for each swept key and an optional ``[key=value]`` taken as given."""
    found = []
    for match in COMMAND.finditer(README.read_text(encoding="utf-8")):
        overrides = []
        for word in shlex.split(OPTIONAL.sub(r"\1", match.group(1))):
            if word == "-m" or "=" not in word or word.startswith("hydra."):
                continue
            key, value = word.split("=", 1)
            overrides.append(f"{key}={value if value.startswith('[') else value.split(',')[0]}")
        if overrides:
            found.append(tuple(overrides))
    return sorted(set(found))


def test_readme_has_the_recipes():
    recipes = readme_recipes()
    for recipe in [("task=ner", "model=tagger_glove"), ("task=sentiment", "experiment=sst2_glove"),
                   ("task=translation",), ("task=forecast",)]:
        assert recipe in recipes, recipes


@pytest.mark.parametrize("overrides", readme_recipes(), ids=" ".join)
def test_no_recipe_stops_on_time(overrides):
    cfg = compose_config(list(overrides))
    assert cfg.trainer.max_minutes is None, f"{' '.join(overrides)} stops after {cfg.trainer.max_minutes} minutes"
    assert cfg.trainer.max_epochs or cfg.trainer.max_steps  # it stops on work
