"""A vocabulary: tokens <-> integer ids, with specials, min-frequency and max-size."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

PAD = "<pad>"
UNK = "<unk>"
BOS = "<s>"
EOS = "</s>"


class Vocabulary:
    """An ordered token list; specials come first (``pad`` is id 0 when present).

    Stored in checkpoints as plain data through :meth:`to_dict` / :meth:`from_dict`.
    """

    def __init__(self, tokens: Iterable[str], pad: str | None = PAD, unk: str | None = UNK,
                 extra_specials: Iterable[str] = ()):
        self.pad, self.unk = pad, unk
        specials = [s for s in (pad, unk, *extra_specials) if s is not None]
        self.itos: list[str] = list(dict.fromkeys([*specials, *tokens]))
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.specials = specials
        self.pad_id = self.stoi[pad] if pad is not None else None
        self.unk_id = self.stoi[unk] if unk is not None else None

    @classmethod
    def from_counter(cls, counts: Counter, min_freq: int = 1, max_size: int | None = None,
                     **kwargs) -> Vocabulary:
        """Most frequent first, ties broken alphabetically so the result is deterministic."""
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls(ranked, **kwargs)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def index(self, token: str) -> int:
        if token in self.stoi:
            return self.stoi[token]
        if self.unk_id is None:
            raise KeyError(f"{token!r} is not in the vocabulary and it has no unknown token")
        return self.unk_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        stoi, unk = self.stoi, self.unk_id
        if unk is None:
            return [self.index(t) for t in tokens]
        return [stoi.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]

    def extend(self, tokens: Iterable[str]) -> None:
        for t in tokens:
            if t not in self.stoi:
                self.stoi[t] = len(self.itos)
                self.itos.append(t)

    def to_dict(self) -> dict:
        return {"itos": list(self.itos), "pad": self.pad, "unk": self.unk,
                "extra_specials": [s for s in self.specials if s not in (self.pad, self.unk)]}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        n_special = sum(s is not None for s in (d["pad"], d["unk"])) + len(d["extra_specials"])
        return cls(d["itos"][n_special:], pad=d["pad"], unk=d["unk"], extra_specials=d["extra_specials"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()
