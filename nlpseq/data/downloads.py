"""Fetching the files of :data:`nlpseq.data.datasets.MANIFEST`: checksummed downloads, and archives kept in a cache.

Every download goes through a temporary ``.part`` file next to its target and is renamed only once complete and
checked, so an interrupted one leaves nothing that looks finished. Archives (``aclImdb_v1.tar.gz``,
``glove.6B.zip``) are downloaded into :func:`cache_dir` ``/downloads``, never into the current directory, and kept
there: building another file from the same archive (or the same file for another data root) downloads nothing
again. An archive that turns out unreadable, or whose member has the wrong checksum, is removed from the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

BLOCK = 1 << 20


def cache_dir() -> Path:
    """``$NLPSEQ_CACHE``, else ``$XDG_CACHE_HOME/nlpseq``, else ``~/.cache/nlpseq``."""
    if os.environ.get("NLPSEQ_CACHE"):
        return Path(os.environ["NLPSEQ_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # the XDG spec: relative is void
    return base / "nlpseq"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, md5: str | None) -> None:
    """Fetch ``url`` into ``target`` through a temporary file; gunzip on the way when only the URL ends in .gz.
    ``md5`` (of what is written) is checked when given; a mismatch is a ``ValueError`` and writes nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            source = gzip.GzipFile(fileobj=response) if url.endswith(".gz") and target.suffix != ".gz" else response
            try:
                for block in iter(lambda: source.read(BLOCK), b""):
                    out.write(block)
            except (EOFError, zlib.error, gzip.BadGzipFile) as e:
                raise ValueError(f"not a complete gzip file ({e})") from None
        actual = md5sum(Path(tmp)) if md5 else None
        if actual != md5:
            raise ValueError(f"checksum mismatch: md5 {actual}, expected {md5}")
        _publish(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _publish(tmp: str, target: Path) -> None:
    """Rename the finished temporary file to ``target`` with the permissions the umask gives new files (a
    temporary file is private), so that a shared data root stays readable by others."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, target)


def cached_archive(url: str, md5: str | None) -> Path:
    """The archive at ``url`` in ``<cache>/downloads/``, downloaded first when it is not there yet."""
    archive = cache_dir() / "downloads" / Path(urllib.parse.urlparse(url).path).name
    if not archive.exists():
        download(url, archive, md5)
    return archive


def extract_gzipped(archive: Path, member: str, target: Path, md5: str) -> None:
    """Write ``member`` of the zip ``archive`` as ``target`` (gzip), streaming; ``md5`` is the member's own (of the
    uncompressed bytes). A mismatch is a ``ValueError`` and writes nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("extracting %s from %s to %s", member, archive, target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    digest = hashlib.md5()
    try:
        with zipfile.ZipFile(archive) as zipped, zipped.open(member) as source, os.fdopen(fd, "wb") as raw, \
                gzip.GzipFile(filename=member, mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out:
            for block in iter(lambda: source.read(BLOCK), b""):  # the zip's CRC is checked at the end, too
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: {member} in {archive.name} has md5 {digest.hexdigest()}, "
                             f"expected {md5}")
        _publish(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def build_from_archive(name: str, entry: dict, folder: Path) -> None:
    """Make the files of ``entry`` in ``folder`` from its ``archive``: IMDB's are converted by
    :func:`nlpseq.data.imdb.build_imdb`; the others' are ``(member, md5)``, each member written gzipped.
    A ``ValueError`` when the archive is unusable (it is then removed from the cache)."""
    from nlpseq.data.imdb import build_imdb

    url, md5 = entry["archive"]
    archive = cached_archive(url, md5)
    try:
        if name == "imdb":
            build_imdb(archive, folder)
        else:
            for file_name, (member, member_md5) in entry["files"].items():
                if not (folder / file_name).exists():
                    extract_gzipped(archive, member, folder / file_name, member_md5)
    except (ValueError, KeyError, tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        archive.unlink(missing_ok=True)
        reason = e.args[0] if isinstance(e, KeyError) and e.args else e  # KeyError's str() adds quotes
        raise ValueError(f"{archive} is not the expected archive ({reason}); removed it from the cache, so the "
                         "next run downloads it again") from None
