"""Known corpora: where their files live locally, where to download them, and their checksums.

A corpus ``name`` lives in ``<root>/<folder>/``. ``root`` is ``data.root`` (default ``data/``, or the
environment variable ``NLPSEQ_DATA``). Missing files are downloaded from their public homes when
``download`` is true and the network allows it, and checked against the manifest's MD5; otherwise the
program stops and says exactly where to put them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from nlpseq.errors import NlpseqError

_CONLL = "https://raw.githubusercontent.com/kamalkraj/BERT-NER/e5be564156f194f1becb0d82aeaf6e762d9eb9ed/data/"

# name -> folder, description and {file name: (url, md5)}
MANIFEST: dict[str, dict] = {
    "conll2003": {
        "folder": "conll2003",
        "description": "CoNLL-2003 English NER (eng.train / eng.testa / eng.testb, IOB2)",
        "files": {
            "train.txt": (_CONLL + "train.txt", "a595d83962c932f2b59fb52227a16086"),
            "valid.txt": (_CONLL + "valid.txt", "d9492db1858f07a26cbb1f3b3f98a49f"),
            "test.txt": (_CONLL + "test.txt", "9cdd4db35b65db782ea91c80f62d074e"),
        },
    },
}


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_dir(name: str, root: str | Path, download: bool = True) -> Path:
    """Return the folder holding corpus ``name`` under ``root``, downloading missing files if allowed."""
    if name not in MANIFEST:
        raise NlpseqError(f"unknown corpus {name!r}; known corpora: {', '.join(MANIFEST)}")
    entry = MANIFEST[name]
    folder = Path(root) / entry["folder"]
    missing = [f for f in entry["files"] if not (folder / f).exists()]
    failures = []
    if missing and download:
        for file_name in list(missing):
            url, md5 = entry["files"][file_name]
            try:
                _download(url, folder / file_name, md5)
                missing.remove(file_name)
            except (OSError, ValueError) as e:
                failures.append(f"{url}: {e}")
                break  # offline: one failure is enough to know
    if missing:
        reason = f" (download failed: {failures[0]})" if failures else ""
        raise NlpseqError(
            f"{entry['description']}: {', '.join(missing)} not found in {folder.resolve()}{reason}. "
            f"Put the files there, or point data.root=PATH (or the environment variable NLPSEQ_DATA) "
            f"at a folder that has {entry['folder']}/{{{', '.join(entry['files'])}}}."
        )
    return folder


def _download(url: str, target: Path, md5: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = md5sum(Path(tmp))
        if actual != md5:
            raise ValueError(f"checksum mismatch: md5 {actual}, expected {md5}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve_path(path: str | Path, root: str | Path) -> Path:
    """``path`` as given if it exists, else relative to the data root (e.g. ``embeddings/glove...``)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    under_root = Path(root) / p
    return under_root if under_root.exists() else p
