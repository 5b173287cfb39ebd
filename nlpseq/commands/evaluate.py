"""Score a checkpoint: ``python scripts/evaluate.py checkpoint=PATH split=test output=FILE``.

``file=PATH`` scores any file in the corpus's format instead of a named split. NER prints seqeval's
per-type report and writes FILE in the conlleval layout (``token gold predicted``). Sentiment prints
accuracy, macro-F1, per-class precision/recall and the confusion matrix, writes one predicted label per line
to FILE and the confusion matrix to ``FILE.confusion.png``. Translation prints sacrebleu's BLEU and chrF with
their signatures and writes one detokenized translation per line; ``src=FILE ref=FILE`` replace the split,
``beam=``, ``length_penalty=`` override the checkpoint's decoding and ``attention_plot=N`` draws sentence N's
attention. A forecast checkpoint prints MSE / MAE per variable and overall over every window of the split, with
the repeat-last, seasonal-naive and ARIMA baselines beside (``arima=false``, ``arima_order=[p,d,q]``), and writes
the forecasts as CSV and ``FILE.png`` (``plot_windows=N``). ``quantize=true`` scores the model with its
recurrent and linear layers dynamically quantized to int8 (CPU only: faster, slightly different scores).

The scores of a named split of a checkpoint in a run directory (``RUN/checkpoints/best.pt``) are also written to
``RUN/scores/<split>[.option=value...].json`` (``scores=PATH`` elsewhere, ``scores=false`` not at all), which
``scripts/summarize.py`` reads.

Settings beyond the common ones below are options of the checkpoint's task (its predictor's
``evaluation_options``); giving one to a model of another task is an error naming both.
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly
from nlpseq.inference import script_predictor
from nlpseq.scores import scores_path, write_scores

COMMON = ("checkpoint", "split", "file", "output", "data_root", "device", "quantize", "scores", "num_threads")


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    predictor, options = script_predictor(cfg, COMMON, "evaluation")
    root = cfg.data_root or os.environ.get("NLPSEQ_DATA")
    examples = predictor.read_examples(cfg.split, cfg.file, root, **options)
    files = [str(options[k]) for k in ("src", "ref") if k in options]
    data = predictor.task.cfg.data
    source = cfg.file or " / ".join(files) or f"{data.get('name') or data.get('problem')} {cfg.split}"
    print(f"{source}: {len(examples)} examples")
    scores, report = predictor.score(examples, cfg.output, **options)
    print(report)
    if cfg.output:
        print(f"predictions written to {cfg.output}")
    path = scores_path(cfg, options)
    if path is not None:
        write_scores(path, scores, cfg, options, len(examples))
        print(f"scores written to {path}")


if __name__ == "__main__":
    main()
