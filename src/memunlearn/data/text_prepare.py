"""Text preparation: corpus -> BPE -> fixed-length sequences -> train/validation/test, plus planted canaries.

Sequences: the corpus's documents joined with EOS, tokenized, cut into
consecutive chunks of ``seq_len`` tokens (the remainder dropped); chunk c has
``example_id`` c whatever the split. A seeded permutation puts
``validation_fraction`` / ``test_fraction`` of the chunks into validation and
test. ``max_sequences`` keeps the first chunks only (a fixed slice, for
tests and quick runs).

A corpus of records (``text_jsonl``, data/corpus.py ``TextRecords``) is cut differently: one record is one
sequence (its tokens, EOS, then PAD; a longer record is cut to ``seq_len``, and ``n_cut`` counts those), record r
has ``example_id`` r, and its owner id is the record's ``id``; ``max_sequences`` keeps the first records.

Canaries (Carlini et al. 2019, "The Secret Sharer"): ``template`` filled
with ``digits`` random digits; ``canaries_per_count`` canaries for every
entry of ``canary_copies``, each inserted that many times into the training
split only, as identical sequences (canary tokens, EOS, then padding), one
``example_id`` per copy, numbered after the last chunk. The canary table
records every copy (like data/noise.py's flip table), so a forget set is a
canary's copies: all of them, or the model still sees the secret.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..config import ConfigError, check_fraction, check_positive
from ..seeding import generator
from .base import TEXT_CORPORA, source_options
from .corpus import EOS, PAD, TextRecords, corpus_sha256, encode, train_tokenizer
from .owner_ids import default_owner_ids, owner_table
from .text import TextInfo, TextSplit

PLACEHOLDER = "{}"
MAX_DIGITS = 6  # exposure enumerates 10**digits fillings
MIN_VOCAB = 258  # byte-level BPE: 256 bytes + PAD + EOS


@dataclass(frozen=True)
class TextOptions:
    """Params ``data.text``: what a text corpus needs beyond ``data``'s shared keys (dataset, split_seed,
    validation_fraction, test_fraction); ignored by image datasets. Defaults as ``TextDataConfig``'s."""

    vocab_size: int = 1024
    seq_len: int = 64
    max_sequences: int = 0
    canary_template: str = "my secret number is {}"
    canary_digits: int = 4
    canary_copies: tuple[int, ...] = (1, 4, 16)
    canaries_per_count: int = 2
    canary_seed: int = 0
    tokenizer: str = ""


@dataclass(frozen=True)
class TextDataConfig:
    corpus: str = "pydoc_topics"
    vocab_size: int = 1024
    seq_len: int = 64  # T: tokens per sequence (the model's context)
    max_sequences: int = 0  # 0 = every chunk; else the first chunks only
    split_seed: int = 0
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    canary_template: str = "my secret number is {}"
    canary_digits: int = 4
    canary_copies: tuple[int, ...] = (1, 4, 16)  # each canary is inserted this many times
    canaries_per_count: int = 2  # canaries per entry of canary_copies
    canary_seed: int = 0
    # "" trains a byte-level BPE on the corpus (vocab_size); else a Hugging Face model directory whose
    # tokenizer.json tokenizes it: the model train.init loads must read the data with its own tokenizer
    tokenizer: str = ""
    path: str = ""  # data.path: the file a corpus read from files (text_jsonl) reads

    def validate(self) -> None:
        TEXT_CORPORA.get(self.corpus)  # unknown name -> error listing the corpora
        check_text_options(self)
        check_fraction(self.validation_fraction, "data.validation_fraction")
        check_fraction(self.test_fraction, "data.test_fraction")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError("data.validation_fraction + data.test_fraction must be < 1 for a text corpus (the rest "
                             f"is training data), got {self.validation_fraction + self.test_fraction}")

    @classmethod
    def of(cls, corpus: str, split_seed: int, validation_fraction: float, test_fraction: float,
           options: TextOptions, path: str = "") -> "TextDataConfig":
        """The config of params ``data`` for a text corpus: its shared keys and ``data.text``."""
        return cls(corpus=corpus, split_seed=split_seed, validation_fraction=validation_fraction,
                   test_fraction=test_fraction, path=path, **options.__dict__)


def check_text_options(options) -> None:
    """Ranges of the ``data.text`` keys (``TextOptions`` or ``TextDataConfig``)."""
    for name in ("vocab_size", "seq_len", "canary_digits"):
        check_positive(getattr(options, name), f"data.text.{name}")
    if options.vocab_size < MIN_VOCAB:
        raise ConfigError(f"data.text.vocab_size must be >= {MIN_VOCAB} (256 bytes + pad + eos), got {options.vocab_size}")
    if options.max_sequences < 0 or options.canaries_per_count < 0:
        raise ConfigError("data.text.max_sequences and data.text.canaries_per_count must be >= 0 (0 = all / no canaries)")
    if options.canary_template.count(PLACEHOLDER) != 1:
        raise ConfigError(f"data.text.canary_template must contain '{PLACEHOLDER}' exactly once (where the digits go), "
                         f"got {options.canary_template!r}")
    if options.canary_digits > MAX_DIGITS:
        raise ConfigError(f"data.text.canary_digits must be <= {MAX_DIGITS} (exposure enumerates 10**digits "
                         f"fillings), got {options.canary_digits}")
    if any(c < 1 for c in options.canary_copies):
        raise ConfigError(f"data.text.canary_copies must be positive counts, e.g. [1, 4, 16], got "
                         f"{list(options.canary_copies)}")


@dataclass(frozen=True)
class PreparedText:
    train: TextSplit  # corpus chunks, then every canary copy
    validation: TextSplit
    test: TextSplit
    info: TextInfo
    tokenizer_json: str  # tokenizers.Tokenizer.to_str(): load with data.corpus.load_tokenizer
    canaries: pd.DataFrame  # example_id, canary, copies, secret, text: one row per copy
    owner_ids: pd.DataFrame  # example_id, owner_id of every sequence (data/owner_ids.py)
    n_cut: int = 0  # records longer than seq_len, cut (a corpus of records only)


def chunk(ids: list[int], seq_len: int, max_sequences: int = 0) -> torch.Tensor:
    """Consecutive (n, seq_len) chunks of a token stream; the remainder is dropped."""
    n = len(ids) // seq_len
    if max_sequences:
        n = min(n, max_sequences)
    return torch.tensor(ids[: n * seq_len], dtype=torch.int64).view(n, seq_len)


def canary_secrets(cfg: TextDataConfig) -> pd.DataFrame:
    """One row per canary: canary index, copies, secret digits; canary j's digits derive from (seed, j)."""
    rows = []
    for j, copies in enumerate(c for c in cfg.canary_copies for _ in range(cfg.canaries_per_count)):
        digits = torch.randint(0, 10, (cfg.canary_digits,), generator=generator(cfg.canary_seed, "canary", j))
        rows.append({"canary": j, "copies": copies, "secret": "".join(map(str, digits.tolist()))})
    return pd.DataFrame(rows, columns=["canary", "copies", "secret"])


def plant_canaries(cfg: TextDataConfig, tokenizer, first_id: int, pad_id: int, eos_id: int
                   ) -> tuple[TextSplit, pd.DataFrame]:
    """Every copy of every canary as a (copies_total, seq_len) split, and its table."""
    secrets = canary_secrets(cfg)
    rows, tokens = [], []
    for canary in secrets.itertuples(index=False):
        text = cfg.canary_template.format(canary.secret)
        ids = encode(tokenizer, text) + [eos_id]
        if len(ids) > cfg.seq_len:
            raise ConfigError(f"data.text.canary_template: a canary is {len(ids)} tokens, longer than text.seq_len "
                             f"{cfg.seq_len}; shorten the template or raise seq_len")
        seq = torch.full((cfg.seq_len,), pad_id, dtype=torch.int64)
        seq[: len(ids)] = torch.tensor(ids)
        for _ in range(canary.copies):
            rows.append({"example_id": first_id + len(rows), "canary": canary.canary, "copies": canary.copies,
                         "secret": canary.secret, "text": text})
            tokens.append(seq)
    table = pd.DataFrame(rows, columns=["example_id", "canary", "copies", "secret", "text"])
    split = TextSplit(torch.stack(tokens) if tokens else torch.empty(0, cfg.seq_len, dtype=torch.int64),
                      torch.tensor(table["example_id"].to_numpy(), dtype=torch.int64))
    return split, table


def pretrained_tokenizer(directory: str):
    """The fast tokenizer a Hugging Face model directory holds (``tokenizer.json``, written by a fast tokenizer's
    ``save_pretrained``)."""
    from tokenizers import Tokenizer

    file = Path(directory).expanduser() / "tokenizer.json"
    if not file.is_file():
        raise ConfigError(f"data.text.tokenizer: {file} does not exist; name a Hugging Face model directory saved "
                          "with a fast tokenizer (tokenizer.save_pretrained(directory))")
    return Tokenizer.from_file(str(file))


def special_ids(tokenizer, directory: str = "") -> tuple[int, int]:
    """(pad id, eos id): the project's tokenizer has both; a pretrained one needs EOS (GPT-2's <|endoftext|>) and
    pads with it when it has no PAD (pad targets are left out of the loss, so EOS targets are too)."""
    eos = tokenizer.token_to_id(EOS)
    if eos is None:
        raise ConfigError(f"data.text.tokenizer: {directory!r} has no {EOS} token; the sequences end with it")
    pad = tokenizer.token_to_id(PAD)
    return (eos if pad is None else pad), eos


def record_sequences(texts: list[str], tokenizer, seq_len: int, pad_id: int, eos_id: int) -> tuple[torch.Tensor, int]:
    """One (seq_len,) sequence per record: its tokens + EOS, right-padded with PAD, cut at seq_len;
    ((n, seq_len) int64, how many records were cut)."""
    tokens = torch.full((len(texts), seq_len), pad_id, dtype=torch.int64)
    cut = 0
    for row, text in enumerate(texts):
        ids = encode(tokenizer, text) + [eos_id]
        cut += len(ids) > seq_len
        ids = ids[:seq_len]
        tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return tokens, cut


def prepare_text(cfg: TextDataConfig) -> PreparedText:
    cfg.validate()
    loader = TEXT_CORPORA.get(cfg.corpus)
    loaded = loader(**source_options(loader, {"path": cfg.path}))
    records = loaded if isinstance(loaded, TextRecords) else None
    documents = records.texts if records else loaded
    tokenizer = pretrained_tokenizer(cfg.tokenizer) if cfg.tokenizer else train_tokenizer(documents, cfg.vocab_size)
    pad_id, eos_id = special_ids(tokenizer, cfg.tokenizer)
    n_cut = 0
    if records:
        kept = documents[: cfg.max_sequences] if cfg.max_sequences else documents
        chunks, n_cut = record_sequences(kept, tokenizer, cfg.seq_len, pad_id, eos_id)  # (n, T)
    else:
        stream = [t for doc in documents for t in encode(tokenizer, doc) + [eos_id]]
        chunks = chunk(stream, cfg.seq_len, cfg.max_sequences)  # (n, T)
    n = len(chunks)
    order = torch.randperm(n, generator=generator(cfg.split_seed, "text_split"))
    n_val, n_test = int(round(cfg.validation_fraction * n)), int(round(cfg.test_fraction * n))
    parts = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
    val, test, train = (TextSplit(chunks[p.sort().values], p.sort().values) for p in parts)
    planted, table = plant_canaries(cfg, tokenizer, n, pad_id, eos_id)
    json_text = tokenizer.to_str()
    info = TextInfo(cfg.corpus, tokenizer.get_vocab_size(), cfg.seq_len, pad_id, eos_id, corpus_sha256(documents),
                    corpus_sha256([json_text]))
    if records:  # the records' own ids; a canary copy is canary-<j>-<copy>
        copy = table.groupby("canary").cumcount().to_numpy()
        owners = owner_table(list(range(n)) + table["example_id"].tolist(),
                             records.ids[:n] + [f"canary-{j}-{c}" for j, c in zip(table["canary"], copy)])
    else:
        owners = default_owner_ids(range(n + len(table)))
    return PreparedText(train.concat(planted), val, test, info, json_text, table, owners, n_cut)
