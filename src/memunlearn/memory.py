"""Memory guards for the buffers that grow as N examples x P values (issue 26): a run that cannot hold one fails
with one line naming the params key, the bytes it needs and the fix, before any work starts (the stage that
allocates it, and ``memunlearn check`` from params alone: ``memunlearn/params.py`` ``buffer_problems``).

The guarded buffers: the train stage's first-epoch gradient store (N x stored values per example,
training/first_epoch_grads.py; a language model's dense layers, modality/text/lm_grads.py) and the ``influence`` method's per-example retain gradients (num_fisher x P,
unlearning/influence.py). The others scale: ``memorize.influence_top`` ranks train->test influences a chunk of
test examples at a time (memorization/exact.py ``top_influences``), and the subset models keep N + M values each.

The limit is the machine's, not the result's, so it is an environment variable and no DVC param
(docs/architecture.md rule 7): ``MEMUNLEARN_MAX_BUFFER_GIB`` (default 16).
"""
from __future__ import annotations

import os
from typing import Mapping

from .config import ConfigError

LIMIT_VARIABLE = "MEMUNLEARN_MAX_BUFFER_GIB"
DEFAULT_LIMIT_GIB = 16.0  # a ResNet-18's dense penultimate conv on 45,000 CIFAR images would need 400 GiB


class BufferTooLarge(ConfigError):
    """A buffer over ``MEMUNLEARN_MAX_BUFFER_GIB``: one line naming the key, the bytes and the fix."""


def buffer_limit(environ: Mapping[str, str] | None = None) -> int:
    """The largest buffer a run may allocate, in bytes (``MEMUNLEARN_MAX_BUFFER_GIB``, default 16 GiB)."""
    raw = (os.environ if environ is None else environ).get(LIMIT_VARIABLE, "").strip()
    try:
        gib = float(raw) if raw else DEFAULT_LIMIT_GIB
    except ValueError:
        gib = -1.0
    if not gib > 0:
        raise ConfigError(f"{LIMIT_VARIABLE}: got {raw!r}; write a positive number of GiB, e.g. 16")
    return int(gib * 2**30)


def check_buffer(key: str, what: str, rows: int, columns: int, fix: str,
                 environ: Mapping[str, str] | None = None, bytes_per_value: int = 4) -> int:
    """The bytes of a (rows, columns) float32 buffer; raises ``BufferTooLarge`` when over the limit."""
    need, limit = rows * columns * bytes_per_value, buffer_limit(environ)
    if need > limit:
        raise BufferTooLarge(f"{key}: {what} needs {rows:,} x {columns:,} float32 = {need / 2**30:.3g} GiB "
                             f"({need:,} bytes), over the {limit / 2**30:g} GiB limit ({LIMIT_VARIABLE}); {fix}")
    return need


def check_first_epoch_store(examples: int, values: int, layers, environ: Mapping[str, str] | None = None) -> int:
    """The first-epoch gradient store's bytes, (examples, values per example) float32 (an image model's or a
    language model's dense layers); one line naming ``train_records.first_epoch_grads`` when over the limit."""
    return check_buffer("train_records.first_epoch_grads", f"the first-epoch gradient store of {list(layers)}",
                        examples, values, "choose smaller or Linear layers (stored factored), e.g. [head], or [] "
                        "for none", environ)
