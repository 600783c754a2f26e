"""The N x P buffers (issue 26): each fails with one line naming its key and the bytes it needs, before any work,
in its stage and in `memunlearn check` (memory.py; MEMUNLEARN_MAX_BUFFER_GIB sets the limit)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from memunlearn.config import ConfigError, with_preset
from memunlearn.memory import LIMIT_VARIABLE, BufferTooLarge, buffer_limit, check_buffer
from memunlearn.models import build_model
from memunlearn.params import check_params
from memunlearn.training import FirstEpochGradRecorder
from memunlearn.unlearning import METHODS, UnlearnContext

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def test_a_buffer_over_the_limit_is_one_line_naming_key_and_bytes():
    environ = {LIMIT_VARIABLE: "0.5"}
    assert check_buffer("a.key", "the thing", 1000, 1000, "lower it", environ) == 4_000_000
    with pytest.raises(BufferTooLarge) as raised:
        check_buffer("a.key", "the thing", 2**20, 256, "lower it", environ)  # 1 GiB
    message = str(raised.value)
    assert message == ("a.key: the thing needs 1,048,576 x 256 float32 = 1 GiB (1,073,741,824 bytes), over the "
                       "0.5 GiB limit (MEMUNLEARN_MAX_BUFFER_GIB); lower it")
    assert buffer_limit({}) == 16 * 2**30


@pytest.mark.parametrize("value", ["lots", "0", "-1"])
def test_a_bad_limit_names_the_variable(value):
    with pytest.raises(ConfigError, match=rf"^{LIMIT_VARIABLE}: got '{value}'; write a positive number of GiB"):
        buffer_limit({LIMIT_VARIABLE: value})


def test_the_first_epoch_store_is_refused_before_it_is_allocated(monkeypatch):
    model = build_model("small_cnn", 1, 4, 8, seed=0)
    assert FirstEpochGradRecorder(model, torch.arange(1000), ["head"]).grads.shape == (1000, 4 + 256 + 4)
    monkeypatch.setenv(LIMIT_VARIABLE, str(100_000 / 2**30))  # 100 kB: 1,000 x 264 float32 = 1 MB is over it
    with pytest.raises(BufferTooLarge, match=r"^train_records\.first_epoch_grads: .* needs 1,000 x 264 float32"):
        FirstEpochGradRecorder(model, torch.arange(1000), ["head"])


def test_the_influence_fisher_is_refused_before_any_work(monkeypatch, synthetic, tiny_recipe):
    train, _, info, flipped = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    before = copy.deepcopy(model.state_dict())
    forget, retain = train.select_ids(flipped), train.drop_ids(flipped)
    method = METHODS.get("influence")
    monkeypatch.setenv(LIMIT_VARIABLE, str(2**20 / 2**30))  # 1 MiB; 64 x P(small CNN on 8x8) float32 is ~10 MiB
    with pytest.raises(BufferTooLarge, match=r"^methods\.influence\.num_fisher: .* needs 64 x [\d,]+ float32"):
        method.run(model, forget, retain, method.config({"num_fisher": 64}), UnlearnContext(info, tiny_recipe, CPU, 0))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_check_names_the_preset_buffers_over_a_small_limit():
    params = with_preset(yaml.safe_load((ROOT / "params.yaml").read_text()),
                         yaml.safe_load((ROOT / "params/cifar10.yaml").read_text()))
    assert check_params(params, {}) == []  # at the default limit: the head's store is 45,000 x 532 (96 MB)
    params["unlearn"] = {**params["unlearn"], "method": "influence", "strategy": "vanilla", "subset_params": {}}
    problems = check_params(params, {LIMIT_VARIABLE: "0.05"})
    assert [p.split(" needs ")[0] for p in problems] == [
        "train_records.first_epoch_grads: the first-epoch gradient store of ['head']",
        "methods.influence.num_fisher: the Fisher's per-example retain gradients"]
    # the store of 45,000 x 532 values; the Fisher of 1,000 examples x the ResNet-18's 11.2M parameters (42 GiB)
    assert "45,000 x 532 float32" in problems[0] and "1,000 x 11,173,962 float32" in problems[1]


def test_a_language_models_dense_store_is_refused_before_it_is_allocated(monkeypatch):
    from memunlearn.models.base import build_lm
    from memunlearn.modality.text.lm_grads import LMFirstEpochGradRecorder

    model = build_lm("gpt2_tiny", 64, 16, seed=0)
    monkeypatch.setenv(LIMIT_VARIABLE, str(2**20 / 2**30))  # 1 MiB: a block's dense gradients for 100 sequences
    with pytest.raises(BufferTooLarge, match=r"^train_records\.first_epoch_grads: the first-epoch gradient store "
                                             r"of \['block:0'\] needs 100 x [\d,]+ float32"):
        LMFirstEpochGradRecorder(model, torch.arange(100), pad_id=0, layers=["block:0"])
