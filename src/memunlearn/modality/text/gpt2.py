"""Small GPT-2 language models (``transformers.GPT2LMHeadModel`` from a config, no pretrained weights).

``gpt2_tiny`` (2 blocks, 128 dims, 4 heads) trains on the pydoc corpus in
minutes on 2 CPU cores; ``gpt2_micro`` (2 blocks, 64 dims) is the test size.
Two deliberate departures from GPT-2:
- untied input embedding and output layer: tied, the embedding's gradient is
  dense (the softmax reaches every row), so it could neither be stored
  sparsely nor be ablated apart from the output layer (the paper's layer
  study); ``lm_head`` is its own layer here;
- no dropout: training and per-sequence gradients are deterministic.
``transformers`` is imported on first build only (it takes seconds).
"""
from __future__ import annotations

import torch
from torch import nn


EMBEDDING = "gpt.transformer.wte.weight"  # the token embedding (V, D): the layer first-epoch gradient ascent unlearns with


class GPT2LM(nn.Module):
    """forward(ids (B, T)) -> logits (B, T, V); ``inputs_embeds`` (B, T, D) replaces the token lookup."""

    def __init__(self, vocab_size: int, context: int, n_layer: int, n_embd: int, n_head: int):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel
        from transformers.utils import logging

        logging.set_verbosity_error()  # bos/eos default to GPT-2's 50256; unused here
        config = GPT2Config(vocab_size=vocab_size, n_positions=context, n_embd=n_embd, n_layer=n_layer,
                            n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            tie_word_embeddings=False, bos_token_id=None, eos_token_id=None)
        self.gpt = GPT2LMHeadModel(config)
        self.n_layer, self.context = n_layer, context

    def forward(self, ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        return self.gpt(input_ids=ids, inputs_embeds=inputs_embeds, use_cache=False).logits  # (B, T, V)

    def token_embedding(self) -> nn.Embedding:
        return self.gpt.transformer.wte


def gpt2_tiny(vocab_size: int, context: int) -> nn.Module:
    return GPT2LM(vocab_size, context, n_layer=2, n_embd=128, n_head=4)


def gpt2_micro(vocab_size: int, context: int) -> nn.Module:
    return GPT2LM(vocab_size, context, n_layer=2, n_embd=64, n_head=2)
