"""``python scripts/serve.py ...``: the same command as ``nlpseq-serve ...`` (:mod:`nlpseq.commands.serve`), kept for
scripts written against the repository."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's nlpseq, installed or not

from nlpseq.commands.serve import main  # noqa: E402

if __name__ == "__main__":
    main()
