"""``python scripts/summarize.py RUN_DIR...``: the same command as ``nlpseq-summarize ...``
(:mod:`nlpseq.commands.summarize`), kept beside the other scripts."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's nlpseq, installed or not

from nlpseq.commands.summarize import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
