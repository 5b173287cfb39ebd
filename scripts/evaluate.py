"""Score a checkpoint: ``python scripts/evaluate.py checkpoint=PATH split=test output=FILE``.

``file=PATH`` scores any file in the corpus's format instead of a named split. NER prints seqeval's
per-type report and writes FILE in the conlleval layout (``token gold predicted``). Sentiment prints
accuracy, macro-F1, per-class precision/recall and the confusion matrix, writes one predicted label per line
to FILE and the confusion matrix to ``FILE.confusion.png``. Translation prints sacrebleu's BLEU and chrF with
their signatures and writes one detokenized translation per line; ``src=FILE ref=FILE`` replace the split,
``beam=``, ``length_penalty=`` override the checkpoint's decoding and ``attention_plot=N`` draws sentence N's
attention. ``quantize=true`` scores the model with its recurrent and linear layers dynamically quantized to
int8 (CPU only: faster, slightly different scores).
"""

from __future__ import annotations

import os

import hydra
from omegaconf import DictConfig, open_dict

import nlpseq
from nlpseq.cli import exits_cleanly, task_options
from nlpseq.trainer import pick_device


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    quantize = bool(cfg.get("quantize", False))
    device = pick_device("cpu" if quantize and cfg.device == "auto" else cfg.device)  # int8 kernels: CPU only
    predictor = nlpseq.load(cfg.checkpoint, device=device, quantize=quantize)
    task = predictor.task
    root = cfg.data_root or os.environ.get("NLPSEQ_DATA")
    if root:
        with open_dict(task.cfg):
            task.cfg.data.root = root
    files = task_options(cfg, predictor, ("src", "ref"))  # translation only, as the decoding options
    decoding = task_options(cfg, predictor, ("beam", "length_penalty", "attention_plot"))
    examples = task.read_split(cfg.split, cfg.file, **files)
    source = cfg.file or " / ".join(files.values()) or f"{task.cfg.data.name} {cfg.split}"
    print(f"{source}: {len(examples)} examples")
    print(task.report(predictor.model, examples, cfg.output, **decoding))
    if cfg.output:
        print(f"predictions written to {cfg.output}")


if __name__ == "__main__":
    main()
