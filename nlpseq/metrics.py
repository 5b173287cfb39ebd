"""Metrics: seqeval entity scores (NER); accuracy, macro-F1 and the confusion matrix (classification);
sacrebleu corpus BLEU and chrF (translation); how a score is shown."""

from __future__ import annotations

from collections.abc import Sequence

from seqeval.metrics import classification_report as seqeval_report
from seqeval.metrics.sequence_labeling import get_entities


def entity_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Entity-level micro precision / recall / F1 (conlleval rules) in percent, plus one dict per type."""
    report = seqeval_report(gold, predicted, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    per_type = {k: {"precision": 100 * float(v["precision"]), "recall": 100 * float(v["recall"]),
                    "f1": 100 * float(v["f1-score"]), "support": int(v["support"])}
                for k, v in report.items() if not k.endswith("avg")}
    return {"f1": 100 * float(micro["f1-score"]), "precision": 100 * float(micro["precision"]),
            "recall": 100 * float(micro["recall"]), "per_type": per_type}


def entity_counts(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """Entities (seqeval's conlleval rules) that are ``correct``, ``predicted`` and in the ``gold`` standard."""
    true, pred = set(get_entities(gold)), set(get_entities(predicted))
    return {"correct": len(true & pred), "predicted": len(pred), "gold": len(true)}


def entity_scores_from_counts(counts: dict[str, float]) -> dict[str, float]:
    """Micro precision / recall / F1 in percent from :func:`entity_counts` (summed over shards): the same
    arithmetic as seqeval's "micro avg", so the numbers equal :func:`entity_scores` to the last bit."""
    correct, predicted, gold = (float(counts[k]) for k in ("correct", "predicted", "gold"))
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2.0 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": 100 * f1, "precision": 100 * precision, "recall": 100 * recall}


def entity_report(gold: list[list[str]], predicted: list[list[str]]) -> str:
    """seqeval's per-type text report (precision, recall, F1, support; micro/macro/weighted averages)."""
    return seqeval_report(gold, predicted, digits=4, zero_division=0)


def classification_scores(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 (percent) and the confusion matrix.

    ``confusion[i][j]`` counts examples of gold class ``labels[i]`` predicted as ``labels[j]``.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    index = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        confusion[index[g]][index[p]] += 1
    return scores_from_confusion(confusion, labels)


def scores_from_confusion(confusion: list[list[int]], labels: Sequence[str]) -> dict:
    """:func:`classification_scores` from a confusion matrix (counts add up across processes)."""
    per_class = {}
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        predicted_i = sum(row[i] for row in confusion)
        support = sum(confusion[i])
        precision = 100 * tp / predicted_i if predicted_i else 0.0
        recall = 100 * tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    correct = sum(confusion[i][i] for i in range(len(labels)))
    total = sum(sum(row) for row in confusion)
    return {"accuracy": 100 * correct / max(total, 1),
            "macro_f1": sum(c["f1"] for c in per_class.values()) / max(len(labels), 1),
            "per_class": per_class, "confusion": confusion}


def classification_report(scores: dict, names: Sequence[str] | None = None) -> str:
    """A per-class table (precision, recall, F1, support), the confusion matrix, accuracy and macro-F1."""
    labels = list(scores["per_class"])
    names = list(names) if names else labels
    width = max(12, *(len(n) for n in names))
    lines = [f"{'class':<{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for label, name in zip(labels, names):
        c = scores["per_class"][label]
        lines.append(f"{name:<{width}} {c['precision']:>9.2f} {c['recall']:>9.2f} {c['f1']:>9.2f} {c['support']:>8}")
    lines += ["", "confusion matrix (rows: gold, columns: predicted)",
              " " * width + "".join(f" {n[:9]:>9}" for n in names)]
    for name, row in zip(names, scores["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f" {v:>9}" for v in row))
    lines += ["", f"accuracy {scores['accuracy']:.2f}, macro-F1 {scores['macro_f1']:.2f}"]
    return "\n".join(lines)


def translation_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
    """sacrebleu corpus BLEU (default 13a tokenization, cased) and chrF of detokenized ``hypotheses`` against
    raw ``references`` (one each per sentence): ``{"bleu", "chrf", "bleu_text", "chrf_text", "bleu_signature",
    "chrf_signature"}``, scores in sacrebleu's 0-100 scale."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {"bleu": float(b.score), "chrf": float(c.score), "bleu_text": str(b), "chrf_text": str(c),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def translation_stats(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """sacrebleu's corpus statistics of BLEU and chrF (n-gram matches and totals, lengths), which add up over
    shards of a corpus: ``{"bleu_0": ..., "chrf_0": ...}``."""
    from sacrebleu.metrics import BLEU, CHRF

    out: dict[str, float] = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        rows = metric._extract_corpus_statistics(list(hypotheses), [list(references)])
        width = len(rows[0]) if rows else len(metric._extract_corpus_statistics(["x"], [["x"]])[0])
        out.update({f"{name}_{i}": float(sum(row[i] for row in rows)) for i in range(width)})
    return out


def translation_scores_from_stats(stats: dict[str, float]) -> dict[str, float]:
    """Corpus BLEU and chrF from :func:`translation_stats` summed over shards (the same as on the whole)."""
    from sacrebleu.metrics import BLEU, CHRF

    out = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        row = [int(stats[k]) for k in sorted((k for k in stats if k.startswith(name + "_")),
                                            key=lambda k: int(k.rsplit("_", 1)[1]))]
        out[name] = float(metric._compute_score_from_stats(row).score)
    return out


def translation_report(scores: dict) -> str:
    """BLEU and chrF lines as sacrebleu prints them, each followed by its signature."""
    return (f"{scores['bleu_text']}\n  signature: {scores['bleu_signature']}\n"
            f"{scores['chrf_text']}\n  signature: {scores['chrf_signature']}")


def show_score(value: float) -> str:
    """A dev score for the log: percentages and BLEU with 2 decimals, small errors (MSE 0.0912) with 4."""
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
