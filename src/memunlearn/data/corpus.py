"""Offline text corpora (registry ``TEXT_CORPORA`` in base.py) and a byte-level BPE trained on them.

The default corpus, ``pydoc_topics``, is the prose of Python's own reference
documentation that ships with every CPython (``pydoc_data.topics``: 79
topics, ~465k characters, ~65k words on 3.11). No pretrained vocabulary can
be loaded offline, so the tokenizer is a byte-level BPE trained here: every
byte is in its alphabet (no unknown tokens), and digits are split one per
token, so every filling of a canary's digits is exactly ``digits`` tokens
(modality/text/evaluation.py enumerates them for exposure).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..config import ConfigError
from .base import TEXT_CORPORA

PAD = "<|pad|>"
EOS = "<|endoftext|>"


@TEXT_CORPORA.register("pydoc_topics")
def pydoc_topics() -> list[str]:
    """Python's reference documentation (stdlib ``pydoc_data.topics``), one document per topic, sorted by name."""
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)]


@dataclass(frozen=True)
class TextRecords:
    """A corpus of records: one example each (data/text_prepare.py), named by the owner's ids."""

    ids: list[str]  # the owner's ids, unique, in file order
    texts: list[str]


@TEXT_CORPORA.register("text_jsonl")
def text_jsonl(path: str = "") -> TextRecords:
    """``data.path``: one JSON object ``{"id": ..., "text": ...}`` per line (blank lines skipped); the id is kept
    as a string. A bad line is one error naming the file and line number."""
    from .files import check_path

    file = check_path(path)
    if not file.is_file():
        raise ConfigError(f"data.path: {file} is a folder; text_jsonl reads one file of JSON lines")
    ids, texts, seen = [], [], {}
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{file} line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON ({exc.msg}); write one {{\"id\": ..., \"text\": ...}} object "
                                  f"per line") from None
            if not isinstance(record, dict) or "id" not in record or "text" not in record:
                raise ConfigError(f"{where}: needs the keys id and text, e.g. {{\"id\": \"doc-1\", \"text\": \"...\"}}")
            owner, text = record["id"], record["text"]
            if not isinstance(owner, (str, int)) or isinstance(owner, bool) or str(owner).strip() == "":
                raise ConfigError(f"{where}: id {owner!r} is not a non-empty string or integer; give the record an id")
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{where}: text {text!r} is not a non-empty string; write the record's text or "
                                  f"remove the line")
            owner = str(owner)
            if owner in seen:
                raise ConfigError(f"{where}: duplicate id {owner!r} (also line {seen[owner]}); give every record its "
                                  f"own id")
            seen[owner] = number
            ids.append(owner)
            texts.append(text)
    if not ids:
        raise ConfigError(f"{file}: empty; write one {{\"id\": ..., \"text\": ...}} object per line")
    return TextRecords(ids, texts)


def corpus_sha256(documents: list[str]) -> str:
    digest = hashlib.sha256()
    for doc in documents:
        digest.update(doc.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def train_tokenizer(documents: list[str], vocab_size: int):
    """A deterministic byte-level BPE (``tokenizers.Tokenizer``) with ids 0 = PAD, 1 = EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),  # "1234" -> 1 2 3 4: canary fillings are one token per digit
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # all 256 bytes: no unknown tokens
    if vocab_size < len(alphabet) + 2:
        raise ValueError(f"text.vocab_size must be >= {len(alphabet) + 2} (256 bytes + pad + eos), got {vocab_size}")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS], initial_alphabet=alphabet,
                                  show_progress=False)
    tokenizer.train_from_iterator(documents, trainer)
    return tokenizer


def load_tokenizer(json_text: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json_text)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids
