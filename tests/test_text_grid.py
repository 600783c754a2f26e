"""First-epoch gradient ascent's ablations as a text grid (experiments/grids.py with the text modality,
modality/text/ablation.py, cache.py) and the gradient source of
first-epoch ascent (modality/text/lm_first_epoch_ga.py ``gradients``): a tiny corpus and gpt2_micro, seconds."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from memunlearn.config import ConfigError, with_preset
from memunlearn.data.text_prepare import TextDataConfig, prepare_text
from memunlearn.modality.text.canaries import train_lm
from memunlearn.modality.text.claims import first_epoch_ga_claims
from memunlearn.models import build_lm
from memunlearn.modality.text.cache import cached_lm
from memunlearn.modality.text.claims import ablation_rows
from memunlearn.modality.text.ablation import ablation_facts
from memunlearn.modality.text.ablation import recorded_layers, recordings
from memunlearn.modality.text.gpt2 import EMBEDDING
from memunlearn.modality.text.lm import fit_lm
from memunlearn.modality.text.lm_grads import LMFirstEpochGradRecorder
from memunlearn.modality.text.pipeline import stored_context
from memunlearn.modality.text.trained import cached_original
from memunlearn.seeding import derive_seed, generator
from memunlearn.unlearning.cache import run_key
from memunlearn.unlearning.config import UnlearnPlan
from memunlearn.params import check_params
from memunlearn.modality.text.lm import LMTrainConfig
from memunlearn.modality.text.lm_grads import grads_at, layer_parameters
from memunlearn.training.recipe import TrainConfig
from memunlearn.unlearning import UnlearnContext
from memunlearn.unlearning.first_epoch_ga import FirstEpochGAConfig, first_epoch_ga
from memunlearn.modality.text.lm_first_epoch_ga import LMFirstEpochGAConfig, lm_first_epoch_ga

REPO = Path(__file__).resolve().parents[1]
DATA = TextDataConfig(vocab_size=300, seq_len=24, max_sequences=100, canary_copies=(1, 8), canary_digits=3)


@pytest.fixture(scope="module")
def prepared():
    return prepare_text(DATA)


@pytest.fixture(scope="module")
def original(prepared):
    trained, grads = train_lm(prepared, LMTrainConfig(model="gpt2_micro", epochs=3), seed=0, recorder_layers=("all",))
    return trained.model, grads


def test_last_epoch_ascent_takes_fs_gradients_at_the_final_parameters(prepared, original):
    model, _ = original
    forget = prepared.train.select_ids(prepared.canaries["example_id"])
    cfg = LMFirstEpochGAConfig(layers=("embedding",), gradients="last_epoch", max_steps=1)
    # no stored gradients needed; the same step as ascending along gradients taken at the end over all of D
    # (the benchmark's way: benchmarks/text_first_epoch_ga.py)
    ours, trace = lm_first_epoch_ga(copy.deepcopy(model), None, forget, prepared.validation, cfg,
                                    prepared.info.pad_id)
    stored = grads_at(model, prepared.train, prepared.info.pad_id, ("embedding",))
    theirs, _ = lm_first_epoch_ga(copy.deepcopy(model), stored, forget, prepared.validation,
                                  LMFirstEpochGAConfig(layers=("embedding",), max_steps=1), prepared.info.pad_id)
    assert len(trace.etas) == 1
    before, after, reference = (dict(m.named_parameters()) for m in (model, ours, theirs))
    moved = [n for n in before if not torch.equal(before[n], after[n])]
    assert moved == layer_parameters(model, ("embedding",))  # only the embedding
    assert all(torch.allclose(after[n], reference[n], atol=1e-6, rtol=1e-4) for n in before)
    first, _ = lm_first_epoch_ga(copy.deepcopy(model), original[1], forget, prepared.validation,
                                 LMFirstEpochGAConfig(layers=("embedding",), max_steps=1), prepared.info.pad_id)
    step = dict(first.named_parameters())[moved[0]] - before[moved[0]]
    assert (step - (after[moved[0]] - before[moved[0]])).abs().max() > 1e-3  # first-epoch gradients differ


def test_gradient_source_is_checked_and_last_epoch_is_for_language_models_only():
    with pytest.raises(ConfigError, match="methods.lm_first_epoch_ga.gradients"):
        LMFirstEpochGAConfig(gradients="middle").validate()
    image = UnlearnContext(info=object(), recipe=TrainConfig(), device=torch.device("cpu"), seed=0,
                           first_epoch_grads=object(), heldout=object())
    with pytest.raises(ValueError, match="methods.first_epoch_ga.gradients: 'last_epoch' is implemented for "
                                         "language models only"):
        first_epoch_ga(None, None, None, FirstEpochGAConfig(gradients="last_epoch"), image)


def test_the_original_records_each_first_epoch_layer_set_once():
    assert recorded_layers([("first_epoch", ("embedding",)), ("last_epoch", ("head",)),
                            ("first_epoch", ("block:-1", "embedding"))]) == ("block:-1", "embedding")
    assert recorded_layers([("first_epoch", ("embedding",)), ("first_epoch", ("all",))]) == ("all",)
    assert recorded_layers([("last_epoch", ("all",))]) == ()
    ascents = iter([("first_epoch", ("embedding",)), ("all_epochs", ("head",)), None, ("last_epoch", ("all",))])
    assert recordings(ascents) == {"first_epoch": ("embedding",), "all_epochs": ("head",)}  # a generator, read once
    assert recordings([("last_epoch", ("all",)), None]) == {}


def test_all_epochs_store_is_the_sum_of_each_epochs_gradients(prepared):
    """A real gpt2_micro trained 3 epochs: the all-epochs recorder's store equals, bit for bit, the sum (in epoch
    order, float32 as it accumulates) of three first-epoch recorders each seeing one epoch, sparse embedding rows
    and dense layers alike; training is the same with or without it."""
    recipe = LMTrainConfig(model="gpt2_micro", epochs=3, batch_size=16)
    trained, first = train_lm(prepared, recipe, seed=0, recorder_layers=("embedding", "head"),
                              all_epochs_layers=("embedding", "head"))
    every = trained.all_epochs_grads
    ids, pad = prepared.train.example_ids, prepared.info.pad_id
    model = build_lm("gpt2_micro", prepared.info.vocab_size, prepared.info.seq_len, derive_seed(0, "lm_init"))
    per_epoch: list[LMFirstEpochGradRecorder] = []

    def hook(model, tokens, positions):  # a fresh first-time recorder per epoch: that epoch's gradients
        if not per_epoch or bool(per_epoch[-1].recorded.all()):
            per_epoch.append(LMFirstEpochGradRecorder(model, ids, pad, ("embedding", "head")))
        per_epoch[-1](model, tokens, positions)

    fit_lm(model, prepared.train, recipe, pad, generator(0, "lm_order"), on_step=hook)
    epochs = [r.result() for r in per_epoch]
    assert len(epochs) == 3 and torch.equal(epochs[0].dense, first.dense)  # epoch 1 is the first-epoch store
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.model.state_dict().values()))
    assert torch.equal(every.dense, epochs[0].dense + epochs[1].dense + epochs[2].dense)
    assert torch.equal(every.indptr, first.indptr) and torch.equal(every.row_tokens, first.row_tokens)
    assert torch.equal(every.rows, epochs[0].rows + epochs[1].rows + epochs[2].rows)
    assert (every.dense - first.dense).abs().max() > 1e-3  # later epochs add something
    summed = every.summed(ids[:5])
    assert torch.allclose(summed[EMBEDDING], sum(e.summed(ids[:5])[EMBEDDING] for e in epochs), atol=1e-6)


def test_gradient_sources_key_the_original_and_the_unlearning_run(prepared, tmp_path):
    """cached_original trains again when the recorded source differs (same layers); an unlearning run's key
    differs by its gradient source and by the all-epochs store's content; the ascent reads its source's store."""
    data = prepared  # what cached_original reads of a PreparedRun: train, info
    recipe = TrainConfig(model="gpt2_micro", epochs=2, precision="fp32")
    emb = ("embedding",)
    _, first_only, _, cached = cached_original(tmp_path, data, recipe, 0, {"first_epoch": emb})
    model, both, _, cached_both = cached_original(tmp_path, data, recipe, 0, {"first_epoch": emb, "all_epochs": emb})
    _, again, _, cached_again = cached_original(tmp_path, data, recipe, 0, {"first_epoch": emb, "all_epochs": emb})
    assert (cached, cached_both, cached_again) == (False, False, True) and set(first_only) == {"first_epoch"}
    assert set(both) == {"first_epoch", "all_epochs"} and again["all_epochs"].fingerprint() == \
        both["all_epochs"].fingerprint() != both["first_epoch"].fingerprint()
    ctx = stored_context(UnlearnContext(prepared.info, recipe, torch.device("cpu"), 0, heldout=prepared.validation),
                         both)
    assert ctx.stored_grads("all_epochs") is both["all_epochs"] and ctx.stored_grads("last_epoch") is None
    forget = prepared.train.select_ids(prepared.canaries["example_id"])
    retain = prepared.train.drop_ids(prepared.canaries["example_id"])
    blocks = {f"ga_{s}": {"method": "first_epoch_ga", "gradients": s, "layers": ["embedding"], "max_steps": 1}
              for s in ("first_epoch", "all_epochs")}
    keys = {s: run_key("vanilla", model, {"low": forget}, retain, UnlearnPlan(f"ga_{s}", blocks), ctx)
            for s in ("first_epoch", "all_epochs")}
    other = dataclasses.replace(ctx, all_epochs_grads=both["first_epoch"])
    assert keys["first_epoch"] != keys["all_epochs"] != run_key(
        "vanilla", model, {"low": forget}, retain, UnlearnPlan("ga_all_epochs", blocks), other)
    cfg = FirstEpochGAConfig(gradients="all_epochs", layers=("embedding",), max_steps=1)
    ours = first_epoch_ga(copy.deepcopy(model), forget, retain, cfg, ctx)
    direct, _ = lm_first_epoch_ga(copy.deepcopy(model), both["all_epochs"], forget, prepared.validation,
                                  LMFirstEpochGAConfig(layers=emb, gradients="all_epochs", max_steps=1),
                                  prepared.info.pad_id)
    firsts = first_epoch_ga(copy.deepcopy(model), forget, retain, dataclasses.replace(cfg, gradients="first_epoch"),
                            ctx)
    name = layer_parameters(model, emb)[0]
    assert torch.equal(dict(ours.named_parameters())[name], dict(direct.named_parameters())[name])
    assert not torch.equal(dict(ours.named_parameters())[name], dict(firsts.named_parameters())[name])
    with pytest.raises(ValueError, match="gradients: all_epochs needs each sequence's gradients summed over every "
                                         "epoch, which only a text grid's originals record"):
        first_epoch_ga(copy.deepcopy(model), forget, retain, cfg, dataclasses.replace(ctx, all_epochs_grads=None))


def test_ablation_facts_give_the_memory_each_layer_set_needs(prepared, original):
    model, grads = original
    row = {"validation_ppl": 44.0, "forget_acc": 0.3}
    base = {"validation_ppl": 40.0, "validation_acc": 0.25}
    n = len(prepared.train)
    emb = ablation_facts(model, grads, "first_epoch", ("embedding",), row, base, n)
    every = ablation_facts(model, grads, "first_epoch", ("all",), row, base, n)
    last = ablation_facts(model, grads, "last_epoch", ("all",), row, base, n)
    other = ablation_facts(model, grads, None, (), row, base, n)
    vocab, dim = dict(model.named_parameters())[layer_parameters(model, ("embedding",))[0]].shape
    assert emb["params"] == vocab * dim and every["params"] == sum(p.numel() for p in model.parameters())
    assert emb["dense_mib"] == pytest.approx(n * vocab * dim * 4 / 2 ** 20)
    assert 0 < emb["stored_mib"] < 0.5 * emb["dense_mib"]  # sparse rows: a sequence touches few tokens
    assert emb["stored_mib"] < 0.5 * every["stored_mib"]
    assert last["stored_mib"] == 0 and last["dense_mib"] == every["dense_mib"]
    assert emb["val_ppl_change"] == pytest.approx(0.1) and emb["calibration_gap"] == pytest.approx(0.05)
    assert other["source"] == "" and np.isnan(other["stored_mib"]) and other["val_ppl_change"] == pytest.approx(0.1)


def test_text_models_are_cached_by_content(prepared, tmp_path):
    calls = []

    def train():
        calls.append(1)
        return build_lm("gpt2_micro", prepared.info.vocab_size, prepared.info.seq_len, seed=len(calls)), {}

    recipe = TrainConfig(model="gpt2_micro", precision="fp32")
    args = ("oracle", prepared.train, prepared.info, recipe)
    first, _, record, cached = cached_lm(tmp_path, *args, 0, {}, train, "modality/text/cache.py")
    again, _, record_again, cached_again = cached_lm(tmp_path, *args, 0, {}, train, "modality/text/cache.py")
    assert (cached, cached_again, len(calls)) == (False, True, 1) and record_again == record
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    cached_lm(tmp_path, *args, 1, {}, train, "modality/text/cache.py")  # another seed: trained
    cached_lm(tmp_path, "oracle", prepared.train.take(torch.arange(10)), prepared.info, recipe, 0, {}, train,
              "modality/text/cache.py")  # other data: trained
    assert len(calls) == 3


def results_rows():
    rows = []
    for seed in range(3):
        for grid, kind in (("ablations", "canaries"), ("ablations", "random"), ("levels", "canaries")):
            for source, layers, exposure in (("first_epoch", "embedding", 9.0 + seed), ("last_epoch", "embedding", 7.0),
                                             ("all_epochs", "embedding", 12.0 + 2 * seed), ("first_epoch", "all", 10.0),
                                             ("", "", 1.0)):
                rows.append({"grid": grid, "method": f"{source}-{layers}", "group_score": "exact", "kind": kind,
                             "strategy": "vanilla", "seed": seed, "source": source, "layers": layers,
                             "exposure_1x": 2.0, "exposure_16x": exposure + (kind != "canaries") * 100,
                             "exposure_4x": 5.0, "original_exposure_16x": 12.0 + seed, "original_exposure_4x": 11.0,
                             "val_ppl_change": 0.05, "stored_mib": 3.0 if layers == "embedding" else 100.0})
    return pd.DataFrame(rows)


def test_text_claims_read_the_ablations_grids_cells_on_the_canaries():
    rows, original = ablation_rows(results_rows())
    assert len(rows) == 3 * 4 and set(rows["source"]) == {"first_epoch", "last_epoch", "all_epochs"}
    assert (rows["exposure_16x"] < 100).all()  # the canaries forget set, not the random one
    assert list(rows.columns[3:6]) == ["exposure_1x", "exposure_4x", "exposure_16x"]  # by copy count
    assert original.to_dict() == {0: 12.0, 1: 13.0, 2: 14.0}  # the most-copied canaries' exposure per seed
    claims = first_epoch_ga_claims(rows, original).set_index("claim")["verdict"]
    # first-epoch 9, 10, 11 vs last-epoch 7: last forgets more; 'all' has no last-epoch cell: no finding-1 row
    assert claims["first_epoch_beats_last_epoch[embedding]"] == "contradicted"
    assert claims["first_epoch_beats_all_epochs[embedding]"] == "supported"  # all-epochs 12, 14, 16 vs 9, 10, 11
    assert "first_epoch_beats_last_epoch[all]" not in claims and claims["embedding_halves_space"] == "supported"
    with pytest.raises(ConfigError, match="ablations grid has no first_epoch_ga cell"):
        ablation_rows(results_rows().assign(source=""))


def test_check_accepts_the_text_preset_and_names_a_grid_value_that_does_not_apply():
    params = with_preset(yaml.safe_load((REPO / "params.yaml").read_text()),
                    yaml.safe_load((REPO / "params/text.yaml").read_text()))
    assert check_params(params) == []
    bad = with_preset(params, {"entanglement": {"group_scores": ["entanglement"], "methods": ["salun"]},
                          "levels": {"kinds": ["class"]}, "methods": {"first_epoch_ga_all": {"layers": ["input"]}}})
    assert sorted(check_params(bad)) == sorted([
        "entanglement.methods[0]: 'salun' does not apply to text data; choose from: none, finetune, neggrad, "
        "neggrad_plus, first_epoch_ga",
        "entanglement.group_scores[0]: 'entanglement' does not apply to text data; choose from: exact, exact_prob, "
        "binary_acc, confidence, entropy, max_conf",
        "levels.kinds[0]: 'class' does not apply to text data; choose from: random, low, mid, high, mix, canaries",
        "methods.first_epoch_ga_all.layers: 'input' names an image layer; for a language model use embedding, head, "
        "block:<i> or all, e.g. [embedding]"])
