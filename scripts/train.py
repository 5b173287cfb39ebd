"""``python scripts/train.py ...``: the same command as ``nlpseq-train ...`` (:mod:`nlpseq.commands.train`), kept
for scripts written against the repository."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's nlpseq, installed or not

from nlpseq.commands.train import run  # noqa: E402

if __name__ == "__main__":
    run()
