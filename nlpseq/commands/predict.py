"""Predict on raw text: ``python scripts/predict.py checkpoint=PATH input=FILE`` (``input=-``: stdin).

One input per line. NER tokenizes each line by the rule in ``nlpseq/data/tokenize.py`` and prints
``token tag`` lines with a blank line after each sentence, or with ``format=jsonl`` one JSON object per
line with the tokens, tags and entity spans (character offsets, end exclusive). Sentiment prints
``label<TAB>name=probability ...`` per line, or with ``format=jsonl`` ``{"text", "label", "probabilities"}``.
Translation prints one translation per line (``beam=`` overrides the checkpoint's beam size), or with
``format=jsonl`` ``{"text", "translation"}``. A forecaster reads one CSV history (``input=history.csv``) and prints
the next ``task.horizon`` rows as CSV with a header (``format=jsonl``: one JSON object per row).
``interactive=true`` predicts each line as it is typed on standard input (prompt on standard error) until end of
input. ``quantize=true`` predicts with the recurrent
and linear layers dynamically quantized to int8 (CPU only: faster, slightly different scores).
"""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig

from nlpseq.cli import exits_cleanly, stdin_bytes
from nlpseq.data.io import STDIN, decode_line
from nlpseq.errors import NlpseqError
from nlpseq.inference import script_predictor

COMMON = ("checkpoint", "input", "format", "output", "interactive", "device", "quantize", "num_threads")


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    if cfg.format not in ("text", "jsonl"):
        raise NlpseqError(f"format must be text or jsonl, got {cfg.format!r}")
    predictor, options = script_predictor(cfg, COMMON, "prediction")
    write = jsonl if cfg.format == "jsonl" else predictor.format_text
    if cfg.interactive:
        if cfg.input != "-":
            raise NlpseqError("interactive=true reads standard input: leave input= out")
        if not predictor.reads_lines:
            raise NlpseqError(f"interactive=true predicts line by line; a {predictor.task.name} model reads one "
                              "whole input: give input=FILE")
        return interact(predictor, options, write)
    results = predictor.predict(predictor.read_inputs(cfg.input), **options)
    out = open(cfg.output, "w", encoding="utf-8") if cfg.output else sys.stdout
    try:
        if cfg.format == "text":
            out.write(predictor.text_header)
        for result in results:
            out.write(write(result))
    finally:
        if out is not sys.stdout:
            out.close()


def jsonl(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False) + "\n"


def interact(predictor, options: dict, write) -> None:
    """Predict each line typed on standard input until end of input; a bad line (not UTF-8, or refused by the
    predictor) is reported as ``error: <stdin>:N: ...``, not fatal."""
    stream, number = stdin_bytes(), 0
    while True:
        print("> ", end="", file=sys.stderr, flush=True)
        raw = stream.readline()
        if not raw:
            print(file=sys.stderr)
            return
        number += 1
        try:
            line = decode_line(raw, STDIN, number)
            if not line.strip():
                continue
            result = predictor.predict([line], **options)[0]
        except NlpseqError as e:
            print(f"error: {e}", file=sys.stderr)
            continue
        sys.stdout.write(write(result))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
