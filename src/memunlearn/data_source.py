"""The data source's content fingerprint (``data/source.json``, stage ``data_source``): what ``prepare`` depends on.

DVC cannot depend on a path that a param names and that may be empty, so the ``data_source`` stage runs on
every ``dvc repro`` (``always_changed``) and writes this small record; ``prepare`` depends on the file, so it
reruns exactly when the record changes: another dataset or path, or any file under ``data.path`` added, removed,
renamed or edited. A built-in dataset's record is its name only (its loader's code is ``prepare``'s own dep).
Outside the ``data`` package on purpose: the stage runs every time, so it imports the standard library only.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

SOURCE_FILE = "data/source.json"  # relative to the project root; a DVC output kept in git (cache: false)
CHUNK = 1 << 20  # bytes read at a time


def rooted(path: str, root: Path | str) -> str:
    """``data.path`` as read from project ``root``: a relative path is under it, an absolute one itself, "" stays
    "" (a built-in dataset)."""
    return str(Path(root) / path) if path and not Path(path).is_absolute() else path


def fingerprint(dataset: str, path: str, base: Path = Path(".")) -> dict[str, Any]:
    """{dataset} for a built-in dataset; {dataset, path, files, bytes, sha256} for one read from ``path``
    (relative to ``base``; recorded as given, so the record is the same in every checkout): sha256 over every
    file's path relative to ``path`` and its contents, in sorted path order."""
    if not path:
        return {"dataset": dataset}
    root = Path(rooted(path, base))
    if not root.exists():
        raise FileNotFoundError(f"data.path: {root} does not exist; set data.path to your data's folder or file")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest, total = hashlib.sha256(), 0
    for file in files:
        name = file.name if file == root else file.relative_to(root).as_posix()
        digest.update(name.encode() + b"\0")
        size = 0
        with open(file, "rb") as handle:
            while block := handle.read(CHUNK):
                digest.update(block)
                size += len(block)
        digest.update(size.to_bytes(8, "little"))  # ends the file: no two listings hash alike
        total += size
    return {"dataset": dataset, "path": path, "files": len(files), "bytes": total, "sha256": digest.hexdigest()}
