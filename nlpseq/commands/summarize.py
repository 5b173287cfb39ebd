"""README table rows from run directories: ``nlpseq-summarize RUN_DIR...`` or ``python scripts/summarize.py ...``.

    python scripts/train.py -m task=ner model=tagger_glove seed=1,2,3
    python scripts/evaluate.py checkpoint=multirun/ner/DATE/0/checkpoints/best.pt split=test   # each job
    python scripts/summarize.py multirun/ner/DATE

prints one markdown row per configuration (mean ± standard deviation over its seeds) and lists, below it, every run
that is missing or incomplete (exit status 1 then). See :mod:`nlpseq.summarize`.
"""

from __future__ import annotations

import argparse
import sys

from nlpseq.summarize import summarize


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="summarize.py", description=__doc__.split("\n")[0])
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories or sweep directories")
    parser.add_argument("--scores", nargs="+", default=["test.json"], metavar="FILE",
                        help="scores files of each run (RUN/scores/FILE, by evaluate.py): test.json, test.beam=1.json")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                        help="test scores to show (default: the dev metric of the task): f1, accuracy macro_f1, bleu")
    parser.add_argument("--commit", default=None, help="the commit of runs trained before run.json was written")
    parser.add_argument("--cpu", default=None, help="the CPU model of runs trained before run.json was written")
    args = parser.parse_args(argv)
    text, missing = summarize(args.run_dirs, args.scores, args.metrics, args.commit, args.cpu)
    print(text)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
