"""A language model trained elsewhere (``train.init``: a local Hugging Face directory): a tiny ``GPT2LMHeadModel``
and its tokenizer saved with ``save_pretrained`` (nothing downloaded), the data tokenized by that tokenizer
(``data.text.tokenizer``), the model loaded as the text modality's original with the same logits, kept through
the project's checkpoint, and one-line errors for a data/tokenizer mismatch and a directory that holds no model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from memunlearn.data.corpus import EOS, corpus_sha256, pydoc_topics, train_tokenizer
from memunlearn.data.text_prepare import TextDataConfig, prepare_text
from memunlearn.modality import load_modality
from memunlearn.params import check_params
from memunlearn.training import TrainConfig

SEQ = 32
DATA = dict(seq_len=SEQ, max_sequences=64, canary_copies=(1,), canaries_per_count=1)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A tiny GPT-2 and its fast tokenizer (a 300-token BPE of the pydoc corpus), saved as Hugging Face saves."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    directory = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    tokenizer = train_tokenizer(pydoc_topics(), 300)
    GPT2TokenizerFast(tokenizer_object=tokenizer, eos_token=EOS).save_pretrained(directory)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=SEQ, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def prepared(hf_dir):
    return prepare_text(TextDataConfig(tokenizer=str(hf_dir), **DATA))


def load(prepared, init: str, root: Path):
    recipe = TrainConfig(model="gpt2_micro", init=init, device="cpu")
    data = SimpleNamespace(train=prepared.train, test=prepared.test, info=prepared.info)
    return load_modality("text").load_original(data, recipe, torch.device("cpu"), root, None)


def test_the_data_is_tokenized_by_the_models_tokenizer(hf_dir, prepared):
    from tokenizers import Tokenizer

    own = Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
    assert prepared.info.tokenizer_sha256 == corpus_sha256([own.to_str()]) and prepared.info.vocab_size == 300
    assert prepared.info.eos_id == own.token_to_id(EOS)


def test_a_hugging_face_directory_is_the_original_with_its_own_logits(hf_dir, prepared, tmp_path):
    from transformers import GPT2LMHeadModel

    model, metrics = load(prepared, hf_dir.name, hf_dir.parent)  # relative to the project's root
    reference = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
    ids = prepared.train.tokens[:3]  # (3, T)
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (3, SEQ, 300) and torch.equal(logits, reference(input_ids=ids).logits)
    assert "Hugging Face GPT2LMHeadModel" in metrics["init"] and metrics["train_ppl"] > 1
    assert metrics["learning_event_seconds"] == 0.0  # nothing recorded

    text = load_modality("text")  # the project's checkpoint keeps the architecture for the stages after train
    text.save_model(model, "gpt2_micro", prepared.info, tmp_path / "model.pt")
    again, name = text.load_model(tmp_path / "model.pt", "train")
    with torch.no_grad():
        assert name == "gpt2_micro" and torch.equal(again.eval()(ids), logits)


def test_data_tokenized_otherwise_is_named_with_the_fix(hf_dir):
    other = prepare_text(TextDataConfig(vocab_size=280, **DATA))  # the project's own BPE
    with pytest.raises(ValueError, match=r"train.init: the prepared data was not tokenized by the tokenizer of "
                                         r"'.*tiny-gpt2'; set data.text.tokenizer: .* and rerun `dvc repro prepare`"):
        load(other, str(hf_dir), hf_dir)


def test_a_directory_without_a_model_is_named(prepared, tmp_path):
    with pytest.raises(ValueError, match=r"train.init: '.*' is not a Hugging Face model directory \(no config.json\)"):
        load(prepared, str(tmp_path), tmp_path)


def test_check_names_a_tokenizer_other_than_the_models():
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params" / "text.yaml").read_text())
    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params = {**base, **params}
    params["train"] = {**params["train"], "init": "/models/tiny-gpt2"}
    problems = [p for p in check_params(params) if p.startswith("data.text.tokenizer")]
    assert problems == ["data.text.tokenizer: '', but train.init loads the language model in '/models/tiny-gpt2', "
                        "which reads its own tokenizer's ids; set data.text.tokenizer: /models/tiny-gpt2"]
    params["data"] = {**params["data"], "text": {**params["data"].get("text", {}), "tokenizer": "/models/tiny-gpt2"}}
    assert not [p for p in check_params(params) if p.startswith("data.text.tokenizer")]


def test_a_registered_language_model_of_another_shape_is_one_line_naming_what_differs(prepared):
    """A models:/ language model is loaded into train.model built for this data, or refused in one line naming
    train.init and the differing shapes (models/init.py ``loaded``, as for an image model); one that fits loads."""
    from memunlearn.models import build_lm

    info = prepared.info
    other = build_lm("gpt2_micro", info.vocab_size + 20, info.seq_len, seed=0).state_dict()  # another vocabulary
    same = build_lm("gpt2_micro", info.vocab_size, info.seq_len, seed=3).state_dict()
    recipe = TrainConfig(model="gpt2_micro", init="models:/lm/1", device="cpu")
    data = SimpleNamespace(train=prepared.train, test=prepared.test, info=info)
    text = load_modality("text")
    with pytest.raises(ValueError) as error:
        text.load_original(data, recipe, torch.device("cpu"), Path("."), lambda uri: other)
    message = str(error.value)
    assert message.startswith("train.init: 'models:/lm/1' does not fit train.model 'gpt2_micro' on this data "
                              f"(a vocabulary of {info.vocab_size} tokens, {SEQ}-token sequences): ")
    assert f"is ({info.vocab_size + 20}, " in message and f"({info.vocab_size}, " in message and "\n" not in message
    model, metrics = text.load_original(data, recipe, torch.device("cpu"), Path("."), lambda uri: same)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.values()))
    assert metrics["init"] == "models:/lm/1 (registered MLflow model)"
