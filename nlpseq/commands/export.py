"""Export a checkpoint for prediction without torch: ``nlpseq-export checkpoint=PATH format=onnx output=DIR``.

Writes a bundle folder (:mod:`nlpseq.export`): the model's ONNX graphs (NER emissions, sentiment logits, or the
translation encoder and one decoder step), its vocabularies, labels, CRF transitions and sentencepiece models as
plain files, and a manifest. ``nlpseq.onnx_runtime.load(DIR).predict(texts)`` then predicts what
``nlpseq.load(PATH).predict(texts)`` does, with onnxruntime and NumPy only (``pip install nlpseq[onnx]``).
Every graph is checked against the PyTorch model on a padded test batch; the largest difference is printed.
``quantize=true`` stores int8 weights (smaller, faster, slightly different scores). forecast and memory models
are refused.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf

from nlpseq.cli import exits_cleanly, required_checkpoint
from nlpseq.errors import NlpseqError


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
@exits_cleanly
def main(cfg: DictConfig) -> None:
    checkpoint = required_checkpoint(cfg)
    output = None if OmegaConf.is_missing(cfg, "output") else cfg.output
    if output in (None, ""):
        raise NlpseqError("output= is required: the folder to write the bundle to (e.g. output=bundles/ner)")
    if str(cfg.device) not in ("auto", "cpu"):
        raise NlpseqError(f"device={cfg.device}: the export traces the model on the CPU (device=cpu); the graphs "
                          "it writes run wherever onnxruntime does")
    from nlpseq.export import export_bundle  # imports torch: after the cheap checks

    manifest = export_bundle(checkpoint, str(output), str(cfg.format), int(cfg.opset), bool(cfg.quantize))
    graphs = ", ".join(g["file"] for g in manifest["graphs"].values())
    print(f"{manifest['task']} model exported to {output}: {graphs} (opset {manifest['opset']}"
          f"{', int8 weights' if manifest['quantized'] else ''}) + {', '.join(manifest['files'].values())}")
    for file, diff in manifest["max_abs_difference"].items():
        print(f"{file}: largest difference from the PyTorch model on a padded test batch {diff:.2g}")
    print(f"predict with: python -c \"import nlpseq.onnx_runtime as r; print(r.load('{output}').predict(['...']))\"")


if __name__ == "__main__":
    main()
