"""Bring back subset models DVC already holds before the memorize stage trains any.

The store is a cached, persistent output of the memorize stage, so every version of it DVC committed (this
workspace's runs, every experiment's, a teammate's that `dvc pull` or `dvc fetch` brought) sits in the DVC
cache as a directory manifest. ``restore`` copies into the workspace store each missing model of the current
key that any manifest in the local cache lists, then asks the default remote for the ones dvc.lock records
that are still missing: `dvc repro --pull` pulls a changed stage's deps, never its persistent outputs.
Files are only added, never replaced, and each is checked against its checksum when the store loads it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterable

from memunlearn.io import atomic_write

log = logging.getLogger("memunlearn.memorization")


def restore(root: Path, store_root: Path, key: str, indices: Iterable[int]) -> int:
    """How many of models ``indices`` of ``key`` were missing from ``store_root`` and are now copied there."""
    missing = {f"{key}/model_{k:05d}.npz" for k in indices}
    missing = {rel for rel in missing if not (store_root / rel).exists()}
    if not missing:
        return 0
    try:
        from dvc.repo import Repo

        with Repo(str(root)) as repo:
            objects = Path(repo.cache.local.path)  # <cache dir>/files/md5: objects by hash, .dir = manifests
        from_cache = _from_cache(objects, store_root, missing)
        from_remote = _from_remote(root, store_root, missing - from_cache)
    except Exception as exc:  # not a DVC repo, no remote, offline: train what is missing
        log.warning("could not restore subset models from DVC (%s); training the missing ones",
                    " ".join(str(exc).split()) or type(exc).__name__)
        return 0
    if from_cache or from_remote:
        log.info("restored %d subset models from the DVC cache and %d from the remote", len(from_cache),
                 len(from_remote))
    return len(from_cache) + len(from_remote)


def _from_cache(objects: Path, store_root: Path, wanted: set[str]) -> set[str]:
    """Copy every file of ``wanted`` (paths inside the store) that a directory manifest in ``objects`` lists."""
    found: set[str] = set()
    for manifest in objects.glob("??/*.dir"):
        try:
            entries = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        for entry in entries if isinstance(entries, list) else []:
            rel, md5 = entry.get("relpath"), entry.get("md5", "")
            source = objects / md5[:2] / md5[2:]
            if rel in wanted and rel not in found and source.is_file():
                atomic_write(store_root / rel, lambda f, source=source: f.write(source.read_bytes()))
                found.add(rel)
    return found


def _from_remote(root: Path, store_root: Path, wanted: set[str]) -> set[str]:
    """Fetch every file of ``wanted`` that dvc.lock's version of the store lists, from the default remote."""
    if not wanted:
        return set()
    from dvc.api import DVCFileSystem

    fs = DVCFileSystem(str(root))
    prefix = store_root.relative_to(root).as_posix()
    found: set[str] = set()
    for rel in sorted(wanted):
        if fs.exists(f"{prefix}/{rel}"):
            data = fs.read_bytes(f"{prefix}/{rel}")
            atomic_write(store_root / rel, lambda f, data=data: f.write(data))
            found.add(rel)
    return found
