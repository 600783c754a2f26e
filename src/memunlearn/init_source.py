"""What ``train.init`` names (a model trained elsewhere), and its fingerprint: the ``init_source`` stage writes it to
``data/init_source.json``, a dep of ``train``, so a new checkpoint at the same path (or an alias moved to another
registered version) reruns the train stage. Torch-free: the stage runs on every ``dvc repro``.

``train.init`` is one of: "" (train the original), ``models:/<name>/<version>`` or ``models:/<name>@<alias>``
(a registered MLflow model), a file (a state dict or the project's checkpoint), or a directory (a Hugging Face
model saved with ``save_pretrained``). A relative path is relative to the project's root.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Mapping

REGISTRY_PREFIX = "models:/"
CHUNK = 1 << 20


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


def content_sha256(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory's files (relative names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def init_fingerprint(init: str, root: Path, registry_version: Callable[[str], Mapping[str, str]]) -> dict:
    """``{"init": ...}`` plus what identifies its content: ``sha256`` of a path, the registered version (name,
    version, run id: ``registry_version(uri)``) of a ``models:/`` URI; ``{"init": ""}`` when training."""
    if not init:
        return {"init": ""}
    if is_registry_uri(init):
        return {"init": init, **registry_version(init)}
    path = init_path(init, root)
    return {"init": init, "kind": "directory" if path.is_dir() else "file", "sha256": content_sha256(path)}
