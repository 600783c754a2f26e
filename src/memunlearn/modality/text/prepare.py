"""Stage ``prepare`` on a text corpus: corpus -> BPE -> fixed-length sequences -> train/validation/test, with
the planted canaries (data/text_prepare.py)."""
from __future__ import annotations

import time
from typing import Any, Mapping

from ...config import from_params
from ...data.prepare import VALIDATION_FILE, PrepareConfig
from ...data.text import save_text_split
from ...data.text_prepare import prepare_text
from ...io import atomic_write, save_json, save_table
from ...tracking import StageRecord
from ..base import StagePaths
from .common import CANARIES, META, TOKENIZER, meta_json


def run(params: Mapping[str, Any], paths: StagePaths, on_row=None) -> StageRecord:
    config = from_params(PrepareConfig, params["data"], "data")
    text = config.text_config()
    start = time.perf_counter()
    data = prepare_text(text)
    seconds = time.perf_counter() - start
    out = paths.prepared
    for split, name in ((data.train, "train.npz"), (data.validation, VALIDATION_FILE), (data.test, "test.npz")):
        save_text_split(split, out / name)
    atomic_write(out / TOKENIZER, lambda f: f.write(data.tokenizer_json.encode()))
    save_table(data.canaries, out / CANARIES)
    save_json(meta_json(data.info, text.canary_template, text.canary_digits), out / META)
    pad = data.info.pad_id
    return StageRecord("prepare", metrics={
        "n_train": len(data.train), "n_validation": len(data.validation), "n_test": len(data.test),
        "n_canary_copies": len(data.canaries), "n_canaries": int(data.canaries["canary"].nunique()),
        "train_tokens": int((data.train.tokens != pad).sum()), "vocab_size": data.info.vocab_size,
        "seq_len": data.info.seq_len, "seconds": seconds,
    }, artifacts=[out / META, out / CANARIES])
