"""A request's example ids: read from a file (CSV with an ``id`` column, a JSON list, or one per line) or a list,
then checked against the data. Every problem is one line naming it and the fix (``RequestError``)."""
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
    ids: tuple[int, ...]  # unique, sorted: the ids this request forgets (already forgotten ones excluded)
    already_forgotten: tuple[int, ...]  # named in the record, a no-op
    duplicates: int  # repeated entries dropped

    @property
    def digest(self) -> str:
        return ids_digest(self.ids + self.already_forgotten)


def ids_digest(ids: Iterable[int]) -> str:
    """16 hex digits over the sorted unique ids: what a request asked for, independent of order and repeats."""
    unique = np.unique(np.asarray(list(ids), dtype=np.int64))
    return hashlib.sha256(unique.tobytes()).hexdigest()[:16]


def read_ids(source: str | Path | Sequence) -> list[int]:
    """The ids in ``source`` as given (repeats kept): a list, or a file: .csv (an ``id`` column), .json (a list),
    else one id per line (an ``id`` header line allowed)."""
    if not isinstance(source, (str, Path)):
        return [_as_id(v, "ids") for v in source]
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RequestError(f"{path}: cannot read it ({exc.strerror or exc}); pass an existing ids file") from None
    if not text.strip():
        raise RequestError(f"{path}: empty; write one example id per line, a JSON list or a CSV with an id column")
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
            raise RequestError(f"{path}: no `id` column; write a header line `id` and one example id per row")
        return [_as_id(r["id"], path) for r in rows]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [_as_id(line, path) for line in lines[1 if lines and lines[0].lower() == "id" else 0:]]  # an `id` header


def _as_id(value, where) -> int:
    if isinstance(value, bool):
        value = None
    try:
        number = int(str(value).strip()) if isinstance(value, str) else value
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, (int, np.integer)):
            return int(number)
    except ValueError:
        pass
    raise RequestError(f"{where}: {value!r} is not an example id; write integers (the example_id column of "
                       f"`memunlearn top`)")


def check_ids(given: list[int], train_ids: np.ndarray, other_splits: Mapping[str, np.ndarray],
              forgotten: set[int]) -> RequestIds:
    """``given`` against the data: unknown ids and ids of another split are errors (count and the first few);
    repeats are dropped, ids the lineage already forgot are a no-op."""
    if not given:
        raise RequestError("no ids given; pass at least one training example id")
    unique = np.unique(np.asarray(given, dtype=np.int64))
    for name, ids in other_splits.items():
        wrong = unique[np.isin(unique, ids)]
        if len(wrong):
            raise RequestError(f"{len(wrong)} id(s) belong to the {name} split, not the training data "
                               f"({_first(wrong)}); only training examples can be forgotten: remove them")
    unknown = unique[~np.isin(unique, train_ids)]
    if len(unknown):
        raise RequestError(f"{len(unknown)} unknown id(s) ({_first(unknown)}): not in the training data; check the "
                           f"ids file against data/prepared (example_id)")
    done = np.asarray(sorted(forgotten), dtype=np.int64)
    already = unique[np.isin(unique, done)]
    return RequestIds(tuple(int(i) for i in unique[~np.isin(unique, done)]), tuple(int(i) for i in already),
                      len(given) - len(unique))


def _first(ids: np.ndarray, n: int = 5) -> str:
    shown = ", ".join(str(i) for i in ids[:n])
    return shown + (", ..." if len(ids) > n else "")
