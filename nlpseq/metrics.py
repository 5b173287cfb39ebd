"""Metric wrappers: seqeval entity scores."""

from __future__ import annotations

from seqeval.metrics import classification_report


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level micro precision / recall / F1 (conlleval rules) in percent, plus one dict per type."""
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    per_type = {k: {"precision": 100 * float(v["precision"]), "recall": 100 * float(v["recall"]),
                    "f1": 100 * float(v["f1-score"]), "support": int(v["support"])}
                for k, v in report.items() if not k.endswith("avg")}
    return {"f1": 100 * float(micro["f1-score"]), "precision": 100 * float(micro["precision"]),
            "recall": 100 * float(micro["recall"]), "per_type": per_type}


def entity_report(gold: list[list[str]], predicted: list[list[str]]) -> str:
    """seqeval's per-type text report (precision, recall, F1, support; micro/macro/weighted averages)."""
    return classification_report(gold, predicted, digits=4, zero_division=0)
