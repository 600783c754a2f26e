"""The ids deletion requests have forgotten (``requests/ledger.jsonl``, docs/requests.md), left out of every
later training of the lineage: the pipeline's stages read D without them (retrain oracles, subset models, the
``retrain`` method, the next original), and a request's retrain trains on D minus them.

Only the ledger's accepted ``forget`` entries count. An entry names the data owner's ids (``owner_ids``,
data/owner_ids.py), which are mapped through the current prepared data's map, so a re-prepared dataset (a file
changed, rows renumbered) still leaves out the right examples; an owner id the data no longer holds is reported,
not an error. Entries written before owner ids (``ids`` only, ints) read as the owner ids ``str(id)``, which is
what a built-in dataset's owner ids are. This module reads the ledger without checking its hash chain
(``memunlearn requests verify`` does) and imports nothing heavy at its top: it is a dep of every stage that reads D.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

LEDGER = "requests/ledger.jsonl"  # relative to the project root; committed (an empty file before any request)
PREPARED = "data/prepared"  # relative to the project root: the owner id map's folder (data/owner_ids.py)
log = logging.getLogger("memunlearn")
T = TypeVar("T")


def forgotten_owner_ids(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every owner id the lineage has forgotten (accepted requests; an entry without ``owner_ids``: str of its
    ``ids``)."""
    return {str(i) for e in entries if e.get("kind") == "forget"
            for i in (e["owner_ids"] if "owner_ids" in e else [int(i) for i in e.get("ids", [])])}


def forgotten_ids(entries: Iterable[Mapping[str, Any]], owners) -> set[int]:
    """The example ids the lineage has forgotten, through ``owners`` (data/owner_ids.py ``load_owner_ids``); an
    owner id the data no longer holds has none (``read_forgotten`` reports it)."""
    from .data.owner_ids import example_ids_of

    return set(example_ids_of(sorted(forgotten_owner_ids(entries)), owners)[0].values())


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


def read_forgotten(ledger: Path | str = LEDGER, prepared: Path | str = PREPARED) -> set[int]:
    """The example ids of ``prepared`` that the ledger file forgot (none when it does not exist); the owner map is
    read only when the ledger forgot something. A forgotten owner id the data no longer holds is logged."""
    entries = read_ledger(ledger)
    if not forgotten_owner_ids(entries):
        return set()
    from .data.owner_ids import example_ids_of, load_owner_ids

    found, missing = example_ids_of(sorted(forgotten_owner_ids(entries)), load_owner_ids(prepared))
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        log.warning("%d owner id(s) forgotten by deletion requests are not in %s any more (%s): nothing to leave "
                    "out for them", len(missing), prepared, shown)
    return set(found.values())


def without_forgotten(data: T, ledger: Path | str = LEDGER, prepared: Path | str = PREPARED) -> T:
    """The prepared data (modality/base.py ``Prepared``) with its training split less every forgotten example
    (``ledger``, ``prepared``: relative to the working directory, the project root where DVC runs a stage)."""
    ids = read_forgotten(ledger, prepared)
    if not ids:
        return data
    train = data.train.drop_ids(sorted(ids))
    log.info("D: %d examples, %d forgotten by deletion requests left out (%s)", len(train),
             len(data.train) - len(train), ledger)
    return dataclasses.replace(data, train=train)
