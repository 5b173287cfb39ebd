"""Predict on raw text: ``python scripts/predict.py checkpoint=PATH input=FILE`` (``input=-``: stdin).

One input per line. NER tokenizes each line by the rule in ``nlpseq/data/tokenize.py`` and prints
``token tag`` lines with a blank line after each sentence, or with ``format=jsonl`` one JSON object per
line with the tokens, tags and entity spans (character offsets, end exclusive). Sentiment prints
``label<TAB>name=probability ...`` per line, or with ``format=jsonl`` ``{"text", "label", "probabilities"}``.
"""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig

import nlpseq
from nlpseq.cli import exits_cleanly, read_input_lines
from nlpseq.errors import DataError, NlpseqError
from nlpseq.trainer import pick_device


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("text", "jsonl"):
        raise NlpseqError(f"format must be text or jsonl, got {cfg.format!r}")
    predictor = nlpseq.load(cfg.checkpoint, device=pick_device(cfg.device))
    lines = read_input_lines(cfg.input)
    if not lines:
        raise DataError("<stdin>" if cfg.input == "-" else cfg.input, None, "is empty: nothing to predict")
    for source, number, text in lines:
        if not text.strip():
            raise DataError(source, number, "is an empty line; expected one sentence per line")
    results = predictor.predict([text for _, _, text in lines])
    out = open(cfg.output, "w", encoding="utf-8") if cfg.output else sys.stdout
    try:
        for result in results:
            if cfg.format == "jsonl":
                out.write(json.dumps(result, ensure_ascii=False) + "\n")
            else:
                out.write(predictor.format_text(result))
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()
