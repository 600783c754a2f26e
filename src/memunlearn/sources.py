"""Fingerprints of the files a param names: the ``sources`` stage writes them, and the stage that reads each
file depends on its fingerprint.

DVC cannot depend on a path held in a param (it may be empty, or a ``models:/`` URI), so the ``sources`` stage
runs on every ``dvc repro`` (``always_changed``; cheap, no MLflow run) and writes one small record per source; a
record that comes out the same reruns nothing after it:

- ``data/source.json`` (a dep of ``prepare``): the data under ``data.path`` (docs/own-data.md): another dataset
  or path, or any file added, removed, renamed or edited, changes it; a built-in dataset's record is its name
  (its loader's code is ``prepare``'s own dep).
- ``data/init_source.json`` (a dep of ``train``): the model ``train.init`` names (docs/params.md, "Start from your
  own model"): a file's or directory's content, or the version a ``models:/`` URI resolves to; ``{"init": ""}``
  when the original trains here.

Standard library only (and io.py, which imports pandas only where a table is read): it runs on every repro. A
relative path is the project root's (the checkout, also under ``dvc exp run --temp``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping

from .io import existing_data_path

DATA_SOURCE = "data/source.json"  # relative to the project root; outputs kept out of DVC's cache (cache: false)
INIT_SOURCE = "data/init_source.json"
REGISTRY_PREFIX = "models:/"
CHUNK = 1 << 20  # bytes read at a time


def rooted(path: str, root: Path | str) -> str:
    """``path`` as read from project ``root``: a relative path is under it, an absolute one itself, "" stays ""."""
    return str(Path(root) / path) if path and not Path(path).is_absolute() else path


def content_fingerprint(root: Path) -> dict[str, Any]:
    """{files, bytes, sha256} of a file, or of a directory's files: sha256 over each file's path relative to
    ``root`` and its contents, in sorted path order."""
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
    return {"files": len(files), "bytes": total, "sha256": digest.hexdigest()}


def data_fingerprint(dataset: str, path: str, base: Path = Path(".")) -> dict[str, Any]:
    """{dataset} for a built-in dataset; {dataset, path, files, bytes, sha256} for one read from ``path``
    (relative to ``base``; recorded as given, so the record is the same in every checkout)."""
    if not path:
        return {"dataset": dataset}
    return {"dataset": dataset, "path": path, **content_fingerprint(existing_data_path(Path(rooted(path, base))))}


def is_registry_uri(init: str) -> bool:
    return init.startswith(REGISTRY_PREFIX)


def init_path(init: str, root: Path) -> Path:
    """The file or directory ``train.init`` names, resolved against the project's ``root``; a one-line error when
    it does not exist."""
    path = Path(init).expanduser()
    path = path if path.is_absolute() else Path(root) / path
    if not path.exists():
        raise FileNotFoundError(f"train.init: {init!r} does not exist ({path}); set it to a checkpoint file, a "
                                "Hugging Face model directory or a models:/ URI (\"\" trains the model)")
    return path


def init_fingerprint(init: str, root: Path, registry_version: Callable[[str], Mapping[str, str]]) -> dict:
    """``{"init": ...}`` plus what identifies its content: a path's ``content_fingerprint``, the registered version
    (name, version, run id: ``registry_version(uri)``) of a ``models:/`` URI; ``{"init": ""}`` when training."""
    if not init:
        return {"init": ""}
    if is_registry_uri(init):
        return {"init": init, **registry_version(init)}
    path = init_path(init, root)
    return {"init": init, "kind": "directory" if path.is_dir() else "file", **content_fingerprint(path)}


def same_as_fingerprinted(init: str, recorded: Mapping[str, Any], root: Path) -> dict:
    """train.init's fingerprint now, which must be ``recorded`` (the sources stage's, DVC's dep of train): a
    checkpoint replaced between the two stages would otherwise train nothing new under the old fingerprint."""
    now = init_fingerprint(init, root, lambda uri: {k: recorded.get(k) for k in ("name", "version", "run_id")})
    if now != recorded:
        raise RuntimeError(f"train.init: {init!r} changed since the sources stage fingerprinted it; rerun "
                           "`dvc repro train`")
    return now
