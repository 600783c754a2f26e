"""Atomic file writes and the table/JSON formats every stage shares.

Everything goes through a temp file and a rename, so a killed run never
leaves half a file where a later stage would read it as valid.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # imported where a table is read or written: the JSON writers stay light (stages/sources.py)
    import pandas as pd


def atomic_write(path: Path, write: Callable) -> None:
    """Call ``write(binary_file)`` on a temp file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def require(path: Path, produced_by: str) -> Path:
    """A missing upstream output gets the command that makes it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `dvc repro {produced_by}` first")
    return path


def existing_data_path(path: Path) -> Path:
    """``data.path`` (as read from the project root) as an existing file or folder, or a one-line error naming the
    key: the one check of it (the sources stage's fingerprint and data/files.py ``check_path``)."""
    if not Path(path).exists():
        raise FileNotFoundError(f"data.path: {path} does not exist; set data.path to your data's folder or file")
    return Path(path)


def save_table(df: pd.DataFrame, path: Path) -> None:
    """Parquet for machines, CSV where a person reads it (by suffix)."""
    path = Path(path)
    if path.suffix == ".csv":
        atomic_write(path, lambda f: f.write(df.to_csv(index=False).encode()))
    else:
        atomic_write(path, lambda f: df.to_parquet(f, index=False))


def load_table(path: Path, produced_by: str) -> pd.DataFrame:
    import pandas as pd

    path = require(path, produced_by)
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def save_json(obj: Any, path: Path) -> None:
    """Pretty JSON; NaN and infinities become null, since JSON has neither."""
    text = json.dumps(_nan_to_none(obj), indent=2, sort_keys=True)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if hasattr(obj, "item"):  # numpy scalars
        return _nan_to_none(obj.item())
    return obj


def load_json(path: Path, produced_by: str) -> Any:
    return json.loads(require(path, produced_by).read_text())
