"""The data owner's ids: one map ``example_id -> owner_id`` per prepared dataset (``data/prepared/owner_ids.csv``).

Every split and store keys rows by the internal ``example_id`` (int64, docs/architecture.md rule 4); the owner's
id is the name a person knows a record by, kept as a string: an ``image_folder`` file's path (or its ``ids.csv``
id), a ``text_jsonl`` record's ``id``, and for the built-in datasets ``str(example_id)``. The prepare stage
writes the map for every dataset; this module is its one reader, and outputs a person reads (the forget set,
memorization scores, proxies, ``memunlearn top``, deletion requests) carry an ``owner_id`` column beside
``example_id`` (``with_owner_ids``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

OWNER_IDS_FILE = "owner_ids.csv"  # in data/prepared/: columns example_id, owner_id
OWNER_IDS = f"data/prepared/{OWNER_IDS_FILE}"  # relative to the project root, where DVC runs a stage
ID_COLUMNS = ("example_id", "owner_id")  # the key columns of a per-example table: no score, no feature


def default_owner_ids(example_ids: Iterable[int]) -> pd.DataFrame:
    """A built-in dataset's map: every example's owner id is its example id as a string."""
    ids = np.asarray(list(example_ids) if not isinstance(example_ids, np.ndarray) else example_ids, dtype=np.int64)
    return owner_table(ids, [str(i) for i in ids])


def owner_table(example_ids, owner_ids) -> pd.DataFrame:
    """The map as a table (example_id int64, owner_id str), sorted by example_id."""
    table = pd.DataFrame({"example_id": np.asarray(example_ids, dtype=np.int64),
                          "owner_id": pd.Series(list(owner_ids), dtype=object).astype(str).to_numpy()})
    return table.sort_values("example_id", kind="stable").reset_index(drop=True)


def save_owner_ids(table: pd.DataFrame, prepared: Path) -> Path:
    """Write the map into the prepared folder; a repeated owner or example id is a bug upstream, refused here."""
    from ..io import save_table

    for column in ID_COLUMNS:
        repeated = table[column][table[column].duplicated()]
        if len(repeated):
            raise ValueError(f"owner id map: {column} {repeated.iloc[0]!r} appears twice; every example needs "
                             f"its own owner id")
    path = Path(prepared) / OWNER_IDS_FILE
    save_table(table, path)
    return path


def load_owner_ids(prepared: Path | str = "data/prepared") -> pd.Series:
    """The map as a Series: owner_id (str) indexed by example_id; a missing file names the stage to run."""
    path = Path(prepared) / OWNER_IDS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `dvc repro prepare` (it writes the owner ids of every "
                                f"dataset)")
    return owner_map(pd.read_csv(path, dtype={"owner_id": str}, keep_default_na=False))  # "NA" stays an id


def owner_map(table: pd.DataFrame) -> pd.Series:
    """A map table (example_id, owner_id) as the Series the readers use: owner_id (str) by example_id."""
    return pd.Series(table["owner_id"].astype(str).to_numpy(),
                     index=pd.Index(table["example_id"].to_numpy(np.int64), name="example_id"), name="owner_id")


def with_owner_ids(table: pd.DataFrame, owners: pd.Series) -> pd.DataFrame:
    """``table`` with an ``owner_id`` column right after ``example_id`` (a person's name for each row)."""
    out = table.drop(columns="owner_id", errors="ignore")
    position = list(out.columns).index("example_id") + 1
    out.insert(position, "owner_id", owners.reindex(out["example_id"].to_numpy()).to_numpy())
    return out


def example_ids_of(owner_ids: Iterable[str], owners: pd.Series) -> tuple[dict[str, int], list[str]]:
    """({owner id: example id} of those the data holds, [owner ids it does not hold]), in the given order."""
    by_owner: Mapping[str, int] = dict(zip(owners.to_numpy(), owners.index.to_numpy(np.int64)))
    found, missing = {}, []
    for owner in owner_ids:
        owner = str(owner)
        if owner in by_owner:
            found[owner] = int(by_owner[owner])
        else:
            missing.append(owner)
    return found, missing
