"""The ids deletion requests have forgotten (``requests/ledger.jsonl``, docs/requests.md), left out of every
later training of the lineage: the pipeline's stages read D without them (retrain oracles, subset models, the
``retrain`` method, the next original), and a request's retrain trains on D minus them.

Only the ledger's accepted ``forget`` entries count. This module reads the ledger without checking its hash chain
(``memunlearn requests verify`` does) and imports nothing heavy: it is a dep of every stage that reads D.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

LEDGER = "requests/ledger.jsonl"  # relative to the project root; committed (an empty file before any request)
log = logging.getLogger("memunlearn")
T = TypeVar("T")


def forgotten_ids(entries: Iterable[Mapping[str, Any]]) -> set[int]:
    """Every id the lineage has forgotten (accepted requests)."""
    return {int(i) for e in entries if e.get("kind") == "forget" for i in e.get("ids", [])}


def read_ledger(path: Path | str = LEDGER) -> list[dict]:
    """Every entry in order ([] when there is no ledger yet); requests/ledger.py ``read``."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path} line {number}: not JSON; the ledger was edited by hand: restore it from "
                             f"git (`git checkout {path}`)") from None
    return entries


def read_forgotten(ledger: Path | str = LEDGER) -> set[int]:
    """``forgotten_ids`` of the ledger file (none when it does not exist)."""
    return forgotten_ids(read_ledger(ledger))


def without_forgotten(data: T, ledger: Path | str = LEDGER) -> T:
    """The prepared data (modality/base.py ``Prepared``) with its training split less every forgotten id
    (``ledger``: relative to the working directory, the project root where DVC runs a stage)."""
    ids = read_forgotten(ledger)
    if not ids:
        return data
    train = data.train.drop_ids(sorted(ids))
    log.info("D: %d examples, %d forgotten by deletion requests left out (%s)", len(train),
             len(data.train) - len(train), ledger)
    return dataclasses.replace(data, train=train)
