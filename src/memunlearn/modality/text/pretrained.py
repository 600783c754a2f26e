"""A causal language model trained elsewhere (``train.init``: a local Hugging Face directory written by
``save_pretrained``), loaded with ``from_pretrained`` (local files only: nothing is downloaded) and wrapped to the
text modality's model contract, ``forward(ids (B, T)) -> logits (B, T, V)`` (modality/text/gpt2.py).

The data must be tokenized by the model's own tokenizer (``data.text.tokenizer``: the same directory; the
prepare stage reads its ``tokenizer.json``): the loader compares the prepared tokenizer with the directory's and
names the fix when they differ. The project's checkpoint of such a model carries its Hugging Face config, so the
stages after ``train`` rebuild it (modality/text/lm.py ``load_lm_checkpoint``).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ...data.corpus import corpus_sha256
from ...data.text import TextInfo
from ...data.text_prepare import pretrained_tokenizer


class PretrainedLM(nn.Module):
    """A Hugging Face causal LM (``gpt``) as the project's language models are: ids -> logits."""

    def __init__(self, gpt: nn.Module):
        super().__init__()
        self.gpt = gpt

    def forward(self, ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.gpt(input_ids=ids, inputs_embeds=inputs_embeds, use_cache=False).logits  # (B, T, V)

    def token_embedding(self) -> nn.Embedding:
        return self.gpt.get_input_embeddings()

    def hf_config(self) -> str:
        """The model's Hugging Face config as JSON: what rebuilds it from a checkpoint (``from_hf_config``)."""
        return self.gpt.config.to_json_string()


def from_hf_config(config_json: str) -> PretrainedLM:
    """An untrained ``PretrainedLM`` of the architecture ``config_json`` describes (its weights come after)."""
    import json

    from transformers import AutoConfig, AutoModelForCausalLM

    config = json.loads(config_json)
    return PretrainedLM(AutoModelForCausalLM.from_config(AutoConfig.for_model(config.pop("model_type"), **config)))


def context_length(config) -> int | None:
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def load_pretrained_lm(init: str, path: Path, info: TextInfo) -> tuple[PretrainedLM, str]:
    """(the model in ``path``, the directory ``init`` names; what was loaded); one line naming ``train.init`` when
    it is no model directory, reads data tokenized otherwise, or has too small a vocabulary or context for the
    data."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    if not (path / "config.json").is_file():
        raise ValueError(f"train.init: {init!r} is not a Hugging Face model directory (no config.json); save the "
                         "model with model.save_pretrained(directory)")
    if info.tokenizer_sha256 != corpus_sha256([pretrained_tokenizer(str(path)).to_str()]):
        raise ValueError(f"train.init: the prepared data was not tokenized by the tokenizer of {init!r}; set "
                         f"data.text.tokenizer: {init} and rerun `dvc repro prepare`")
    logging.set_verbosity_error()
    gpt = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    vocab, context = gpt.get_input_embeddings().num_embeddings, context_length(gpt.config)
    if vocab < info.vocab_size:
        raise ValueError(f"train.init: {init!r} has {vocab} token embeddings but the data's tokenizer has "
                         f"{info.vocab_size} tokens; start from a model with its tokenizer's vocabulary")
    if context is not None and context < info.seq_len:
        raise ValueError(f"train.init: {init!r} reads at most {context} tokens but data.text.seq_len is "
                         f"{info.seq_len}; set data.text.seq_len <= {context}")
    return PretrainedLM(gpt).eval(), f"{init} (Hugging Face {type(gpt).__name__})"
