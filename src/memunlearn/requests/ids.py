"""A request's ids: the data owner's ids (data/owner_ids.py; a built-in dataset's are its example ids), read from a
file (CSV with an ``id`` column, a JSON list, or one per line) or a list, mapped to example ids through the
prepared data's owner map, then checked against the data. Every problem is one line naming it and the fix
(``RequestError``)."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np


class RequestError(ValueError):
    """Bad input to a request: one line, the problem and the fix; nothing was changed."""


@dataclass(frozen=True)
class RequestIds:
    ids: tuple[int, ...]  # unique, sorted: the example ids this request forgets (already forgotten ones excluded)
    owner_ids: tuple[str, ...]  # the owner ids of ``ids``, in the same order
    already_forgotten: tuple[str, ...]  # owner ids named in the record, a no-op
    duplicates: int  # repeated entries dropped

    @property
    def digest(self) -> str:
        return ids_digest(self.owner_ids + self.already_forgotten)


def ids_digest(ids: Iterable) -> str:
    """16 hex digits over the sorted unique owner ids (as strings): what a request asked for, independent of order
    and repeats, and of the example ids a re-prepared dataset gives them."""
    unique = sorted({str(i) for i in ids})
    return hashlib.sha256("\n".join(unique).encode()).hexdigest()[:16]


def read_ids(source: str | Path | Sequence) -> list[str]:
    """The owner ids in ``source`` as given (repeats kept), as strings: a list, or a file: .csv (an ``id``
    column), .json (a list), else one id per line (an ``id`` header line allowed)."""
    if not isinstance(source, (str, Path)):
        return [_as_id(v, "ids") for v in source]
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RequestError(f"{path}: cannot read it ({exc.strerror or exc}); pass an existing ids file") from None
    if not text.strip():
        raise RequestError(f"{path}: empty; write one id per line, a JSON list or a CSV with an id column")
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); write a list of ids, "
                               f"e.g. [12, 40]") from None
        if not isinstance(values, list):
            raise RequestError(f"{path}: a JSON {type(values).__name__}; write a list of ids, e.g. [12, 40]")
        return [_as_id(v, path) for v in values]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or "id" not in rows[0]:
            raise RequestError(f"{path}: no `id` column; write a header line `id` and one id per row")
        return [_as_id(r["id"], path) for r in rows]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [_as_id(line, path) for line in lines[1 if lines and lines[0].lower() == "id" else 0:]]  # an `id` header


def _as_id(value, where) -> str:
    """One owner id as a string: a non-empty string, or an integer (a float that is one, as JSON may give)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise RequestError(f"{where}: {value!r} is not an id; write the owner ids of `memunlearn top` (owner_id: a "
                       f"built-in dataset's are its integer example ids)")


def to_example_ids(given: list[str], owners) -> list[int]:
    """``given`` owner ids as example ids through ``owners`` (data/owner_ids.py ``load_owner_ids``), repeats kept;
    ids the data does not hold are an error (count and the first few)."""
    from ..data.owner_ids import example_ids_of

    found, missing = example_ids_of(given, owners)
    if missing:
        unknown = list(dict.fromkeys(missing))
        raise RequestError(f"{len(unknown)} unknown id(s) ({_first(np.asarray(unknown, dtype=object))}): not in the "
                           f"data; check the ids file against data/prepared/owner_ids.csv (owner_id)")
    return [found[str(owner)] for owner in given]


def check_ids(given: list[str], owners, train_ids: np.ndarray, other_splits: Mapping[str, np.ndarray],
              forgotten: set[int]) -> RequestIds:
    """``given`` owner ids against the data (``owners``: data/owner_ids.py ``load_owner_ids``): unknown ids and
    ids of another split are errors (count and the first few); repeats are dropped, ids the lineage already
    forgot (``forgotten``: example ids) are a no-op."""
    if not given:
        raise RequestError("no ids given; pass at least one training example's id")
    unique = np.unique(np.asarray(to_example_ids(given, owners), dtype=np.int64))
    for name, ids in other_splits.items():
        wrong = unique[np.isin(unique, ids)]
        if len(wrong):
            raise RequestError(f"{len(wrong)} id(s) belong to the {name} split, not the training data "
                               f"({_first(owners.reindex(wrong).to_numpy())}); only training examples can be "
                               f"forgotten: remove them")
    unknown = unique[~np.isin(unique, train_ids)]
    if len(unknown):
        raise RequestError(f"{len(unknown)} unknown id(s) ({_first(owners.reindex(unknown).to_numpy())}): not in "
                           f"the training data; check the ids file against data/prepared/owner_ids.csv (owner_id)")
    done = np.asarray(sorted(forgotten), dtype=np.int64)
    kept, already = unique[~np.isin(unique, done)], unique[np.isin(unique, done)]
    return RequestIds(tuple(int(i) for i in kept), tuple(str(o) for o in owners.reindex(kept).to_numpy()),
                      tuple(str(o) for o in owners.reindex(already).to_numpy()), len(given) - len(unique))


def _first(ids: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in ids[:n])
    return shown + (", ..." if len(ids) > n else "")
