"""The append-only, tamper-evident ledger of deletion requests: one JSON object per line, each carrying the
hash of the one before it (``prev_hash``) and its own (``hash``, over every other field), so an edited, inserted
or deleted entry breaks the chain at a named line. Appends are atomic (the whole file is rewritten to a temporary
file and renamed), so a killed process leaves the old ledger or the new one, never half a line."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..forgotten import forgotten_ids, forgotten_owner_ids  # noqa: F401  (re-exported: the ledger's readers)
from ..forgotten import read_ledger as read  # the one reader: the stages read the ledger without this package
from ..io import atomic_write

GENESIS = "0" * 64  # prev_hash of the first entry


def entry_hash(entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def append(path: Path, entry: Mapping[str, Any]) -> dict:
    """Append ``entry`` chained to the last one; returns it with ``prev_hash`` and ``hash``."""
    entries = read(path)
    chained = {**entry, "prev_hash": entries[-1]["hash"] if entries else GENESIS}
    chained["hash"] = entry_hash(chained)
    lines = [json.dumps(e, sort_keys=True) for e in entries + [chained]]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda f: f.write(("\n".join(lines) + "\n").encode()))
    return chained


def chain_problems(entries: list[dict]) -> list[str]:
    """Every break of the hash chain, one line each naming the entry: a hash that does not match the entry's
    content (edited), a ``prev_hash`` that does not match the entry before it (an entry deleted or inserted)."""
    problems = []
    previous = GENESIS
    for number, entry in enumerate(entries, 1):
        if entry.get("prev_hash") != previous:
            problems.append(f"{_name(number, entry)}: prev_hash does not match the entry before it: an entry was "
                            f"deleted or inserted before it")
        if entry.get("hash") != entry_hash(entry):
            problems.append(f"{_name(number, entry)}: its hash does not match its content: the entry was edited")
        previous = entry.get("hash")
    return problems


def verify(entries: list[dict], version_tags: Callable[[str], Mapping[str, str] | None]) -> list[str]:
    """``chain_problems`` and, per entry, a model version that does not exist or whose tags disagree with it.
    ``version_tags(version)``: the tags of that version of the lineage's model, None if it does not exist."""
    problems = chain_problems(entries)
    for number, entry in enumerate(entries, 1):
        version = str(entry.get("new_version"))
        tags = version_tags(version)
        if tags is None:
            problems.append(f"{_name(number, entry)}: model version {version} does not exist")
            continue
        for key in ("request_id", "ids_digest"):
            if str(entry.get(key)) != tags.get(key):
                problems.append(f"{_name(number, entry)}: model version {version} has {key} {tags.get(key)!r}, "
                                f"the ledger {entry.get(key)!r}")
    return problems


def _name(number: int, entry: Mapping[str, Any]) -> str:
    return f"entry {number} (request {entry.get('request_id', '?')!r})"


@contextmanager
def lineage_lock(path: Path, poll: float = 0.05) -> Iterator[None]:
    """One request at a time per lineage, in the order the callers asked: each takes a ticket (a file in
    ``<ledger>.queue/`` named by its arrival time, locked while its caller lives), waits until no earlier ticket
    is alive, then takes the exclusive lock beside the ledger. The kernel drops both locks when a caller dies
    (kill -9 included): its ticket is skipped and removed, so a crash never blocks the lineage."""
    lock, queue = Path(f"{path}.lock"), Path(f"{path}.queue")
    queue.mkdir(parents=True, exist_ok=True)
    with _ticket(queue) as mine, open(lock, "a") as handle:
        while any(_alive(ticket) for ticket in sorted(queue.glob("[0-9]*")) if ticket.name < mine.name):
            time.sleep(poll)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _ticket(queue: Path) -> Iterator[Path]:
    """This caller's place in ``queue``: locked before it gets its name, so a visible ticket is a live caller's."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"  # sorts by arrival
    ticket = queue / name
    with open(queue / f".{name}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.replace(queue / f".{name}", ticket)
        try:
            yield ticket
        finally:
            ticket.unlink(missing_ok=True)


def _alive(ticket: Path) -> bool:
    """Whether ``ticket``'s caller still holds it; a dead caller's ticket is removed."""
    try:
        with open(ticket) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False  # its caller finished
    except BlockingIOError:
        return True
    ticket.unlink(missing_ok=True)  # its caller died without removing it
    return False


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
