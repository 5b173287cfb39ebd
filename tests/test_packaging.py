"""The wheel: built from the sources, installed into a fresh virtual environment outside the repository, and
used from an empty folder through its console commands: train (with a user's own config folder), evaluate,
predict. Nothing is downloaded: the dependencies are those of the environment running the tests, made visible
to the fresh one by a ``.pth`` line (a path listed there is not scanned for further ``.pth`` files, so the
checkout's editable install of nlpseq stays out of sight)."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the nlpseq wheel installed; returns its bin/ folder."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so the build leaves no build/ or egg-info in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nlpseq", source / "nlpseq", ignore=shutil.ignore_patterns("__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
         str(source)], cwd=base)
    wheel = next((base / "dist").glob("nlpseq-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "nlpseq/conf/train.yaml" in names and "nlpseq/conf/task/ner.yaml" in names, names

    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=base)
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base)
    dependencies = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (Path(purelib.stdout.strip()) / "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
         str(wheel)], cwd=base)
    return venv / "bin"


def test_the_installed_wheel_trains_evaluates_and_predicts_from_an_empty_folder(installed, tiny_conll, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    env = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1",
           "NLPSEQ_DATA": str(tiny_conll)}
    if "LD_LIBRARY_PATH" in os.environ:
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    where = run([str(installed / "python"), "-c", "import nlpseq; print(nlpseq.__file__)"], cwd=work, env=env)
    assert where.stdout.startswith(str(installed.parent)), where.stdout  # the wheel's copy, not the checkout's

    # a user's own config folder next to the packaged presets: a new trainer preset extending `debug`
    own = work / "myconf" / "trainer"
    own.mkdir(parents=True)
    (own / "tiny.yaml").write_text("defaults:\n  - debug\n  - _self_\nmax_steps: 4\neval_every_steps: 2\n")
    run_dir = work / "run"
    done = run([str(installed / "nlpseq-train"), "--config-dir", str(work / "myconf"), "task=ner", "trainer=tiny",
                *TINY_MODEL, "data.download=false", f"hydra.run.dir={run_dir}"], cwd=work, env=env)
    assert done.stdout.strip().splitlines()[-1].startswith(f"best checkpoint: {run_dir}/checkpoints/best.pt")
    steps = [json.loads(line).get("step") for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 4  # the user's preset was used
    best = run_dir / "checkpoints" / "best.pt"

    done = run([str(installed / "nlpseq-evaluate"), f"checkpoint={best}", "split=test"], cwd=work, env=env)
    assert "micro avg" in done.stdout
    (work / "raw.txt").write_text("John Smith visited Paris .\n", encoding="utf-8")
    done = run([str(installed / "nlpseq-predict"), f"checkpoint={best}", "input=raw.txt", "format=jsonl"], cwd=work,
               env=env)
    assert json.loads(done.stdout)["tokens"] == ["John", "Smith", "visited", "Paris", "."]
    assert sorted(p.name for p in work.iterdir()) == ["myconf", "raw.txt", "run"]  # nothing else written here


def test_the_commands_answer_help_and_show_the_config(installed, tmp_path):
    env = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = run([str(installed / "nlpseq-train"), "--help"], cwd=tmp_path, env=env)
    assert "task: forecast, memory, ner, sentiment, translation" in done.stdout
    done = run([str(installed / "nlpseq-train"), "task=sentiment", "--cfg", "job"], cwd=tmp_path, env=env)
    assert "architecture: classifier" in done.stdout
