"""IMDB's original archive (``aclImdb_v1.tar.gz``) -> ``train.jsonl.gz`` / ``test.jsonl.gz``.

Reviews are ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``. Each becomes
``{"id", "rating", "label", "text"}`` (label 1 for pos, 0 for neg; text unchanged, ``<br />`` included),
positive reviews first, each folder in id order: the layout of ``../shared/data/imdb``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tarfile
from pathlib import Path

REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def build_imdb(archive: str | Path, folder: str | Path) -> None:
    """Write ``folder/{train,test}.jsonl.gz`` from the archive; each file appears atomically."""
    reviews: dict[str, list[tuple[int, int, int, str]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = REVIEW.match(member.name)
            if not match or not member.isfile():
                continue
            split, polarity, review_id, rating = match.groups()
            text = tar.extractfile(member).read().decode("utf-8")
            label = 1 if polarity == "pos" else 0
            reviews[split].append((-label, int(review_id), int(rating), text))
    folder = Path(folder)
    for split, rows in reviews.items():
        if not rows:
            raise ValueError(f"{archive} has no aclImdb/{split}/{{pos,neg}}/*.txt reviews")
        rows.sort(key=lambda r: (r[0], r[1]))
        target = folder / f"{split}.jsonl.gz"
        tmp = target.with_suffix(".tmp")
        with gzip.open(tmp, "wt", encoding="utf-8") as out:
            for neg_label, review_id, rating, text in rows:
                record = {"id": review_id, "rating": rating, "label": -neg_label, "text": text}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
