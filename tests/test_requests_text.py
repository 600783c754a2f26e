"""Deletion requests on text, the parts (modality/text/requests.py): the gates for sequences, canary exposure before
and after, a version's proxy scores. Real parts: the text modality prepares a tiny corpus with canaries (one
inserted once, one 8 times), trains a micro GPT-2 on it and, as the retrain a request should look like, one on D
without the forgotten canaries; the memorize stage's leave-group-out scores come from two subset models."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from memunlearn.config import ConfigError, from_params
from memunlearn.data import PrepareConfig
from memunlearn.memorization import ExactConfig
from memunlearn.modality import load_modality
from memunlearn.modality.text.evaluation import canary_exposures, metrics_of
from memunlearn.modality.text.lm import score_sequences
from memunlearn.modality.text.requests import (OUT_OF_SUBSET, canary_fillings, exposure_gate, exposure_rows,
                                               reference_of,
                                               request_gates, sequence_proxy)
from memunlearn.requests.config import RequestsConfig
from memunlearn.requests.gates import OutOfSubset, out_of_subset
from memunlearn.requests.report import markdown
from memunlearn.training.recipe import RecordConfig, TrainConfig

DATA = {"dataset": "pydoc_topics", "noise_fraction": 0.0, "validation_fraction": 0.2, "test_fraction": 0.1,
        "text": {"vocab_size": 300, "seq_len": 24, "max_sequences": 160, "canary_copies": [1, 8],
                 "canaries_per_count": 1, "canary_digits": 2}}
RECIPE = TrainConfig(model="gpt2_micro", epochs=6, batch_size=16, lr=3e-3, weight_decay=0.0, lr_milestones=(),
                     device="cpu")
CONFIG = RequestsConfig(device="cpu")


@pytest.fixture(scope="module")
def lineage(tmp_path_factory):
    """The prepared run, the original, a retrain without canary copies F, F, R and the exact scores' table."""
    root = tmp_path_factory.mktemp("text_requests")
    modality = load_modality("text")
    modality.prepare(from_params(PrepareConfig, DATA, "data"), root / "raw", root / "prepared")
    data = modality.load(root / "prepared")
    original, _, _, _ = modality.train_original(data, RECIPE, RecordConfig(curvature=False, first_epoch_grads=()),
                                                "cpu", root / "train", None)
    forget_ids = data.canaries["example_id"].to_numpy()  # both canaries, every copy: 9 sequences
    forget, retain = data.train.select_ids(forget_ids), data.train.drop_ids(forget_ids)
    retrained, _, _ = modality.cached_oracle(retain, data.info, RECIPE, "cpu", 0, None)
    exact, _, _ = modality.memorize(data, RECIPE, ExactConfig(num_models=2, subset_fraction=0.5), "cpu",
                                    root / "memorize", root / "plots", None)
    return {"data": data, "original": original, "retrained": retrained, "forget": forget, "retain": retain,
            "exact": exact, "modality": modality}


def test_the_gates_of_an_unchanged_model_show_no_change_and_their_figures_are_the_direct_ones(lineage):
    data, forget, original = lineage["data"], lineage["forget"], lineage["original"]
    check = request_gates(original, copy.deepcopy(original), forget, lineage["retain"], data, "cpu", CONFIG,
                          lineage["exact"])
    figures = check.figures
    assert figures["audit_auc"] == figures["audit_auc_before"]
    assert figures["validation_ppl"] == figures["validation_ppl_before"]
    direct = metrics_of(score_sequences(original, data.validation, data.info.pad_id))["perplexity"]
    assert figures["validation_ppl"] == pytest.approx(direct, rel=1e-9)
    losses = score_sequences(original, forget, data.info.pad_id)["loss"]  # 9 copies of 2 canaries: 2 distinct
    assert figures["forget_sequences"] == 2 and losses.nunique() == 2
    assert figures["forget_loss"] == pytest.approx(losses.unique().mean(), rel=1e-9) == figures["forget_loss_before"]
    gates = {g.name: g for g in check.gates}
    assert gates["utility"].figure == 0.0 and gates["utility"].passed
    assert gates["no_overforgetting"].figure == pytest.approx(figures["forget_loss"] - figures["reference_loss"])
    assert figures["reference_size"] == CONFIG.heldout_per_example * 2
    assert figures["reference"] == "unseen fillings of the canary template for 2 canaries"
    low, high = figures["audit_auc_ci"]
    assert low <= figures["audit_auc"] <= high
    rows = next(iter(check.tables.values()))
    assert [(r["canary"], r["copies"], r["copies_forgotten"]) for r in rows] == [(0, 1, 1), (1, 8, 8)]
    assert all(r["exposure_before"] == r["exposure_after"] for r in rows)
    assert [r["p_if_never_seen"] for r in rows] == [pytest.approx(2.0 ** -r["exposure_after"]) for r in rows]


def test_a_retrain_without_the_canaries_lowers_their_exposure_and_the_report_shows_both(lineage):
    data, forget = lineage["data"], lineage["forget"]
    check = request_gates(lineage["original"], lineage["retrained"], forget, lineage["retain"], data, "cpu", CONFIG,
                          lineage["exact"])
    title, rows = next(iter(check.tables.items()))
    repeated = next(r for r in rows if r["copies"] == 8)
    # 8 copies of 2 random digits: the original ranks the secret near the top of 100 fillings (exposure of a few
    # bits, of log2(100) = 6.64); a model that never saw it ranks it by chance (expected ~1.4 bits)
    assert repeated["exposure_before"] > repeated["exposure_after"] + 1.5
    expected = canary_exposures(lineage["retrained"], __import__("memunlearn.data.corpus", fromlist=["x"])
                                .load_tokenizer(data.tokenizer_json), data.canaries, data.canary_template,
                                data.canary_digits).set_index("canary")["exposure"]
    assert [r["exposure_after"] for r in rows] == [pytest.approx(expected[r["canary"]]) for r in rows]
    report = {"request_id": "r", "verdict": "accepted", "parent_version": "1", "new_version": "2", "model_name": "m",
              "ids": {"count": 9, "digest": "d", "already_forgotten": [], "duplicates": 0}, "strategy": "rum_f",
              "method": "neggrad_plus", "scores": {"name": "exact_prob", "computed": False}, "plan": {"low": 9},
              "seconds": {"total": 1.0}, "gates": [g.__dict__ for g in check.gates], "tables": check.tables}
    text = markdown(report)
    assert title in text and "| canary | copies | copies_forgotten | exposure_before | exposure_after |" in text
    assert f"| 1 | 8 | 8 | {repeated['exposure_before']:.3f} | {repeated['exposure_after']:.3f} |" in text


def test_the_gates_judge_each_figure_against_its_threshold(lineage):
    data = lineage["data"]
    strict = replace(CONFIG, max_perplexity_increase=0.0, max_overforgetting_loss=0.0, audit_margin=0.0)
    check = request_gates(lineage["original"], lineage["retrained"], lineage["forget"], lineage["retain"], data,
                          "cpu", strict, lineage["exact"])
    gates = {g.name: g for g in check.gates}
    assert set(gates) == {"membership_audit", "utility", "no_overforgetting", "canary_exposure"}
    for name in ("utility", "no_overforgetting"):
        assert gates[name].passed == (gates[name].figure <= 0.0)
    low, high = check.figures["audit_auc_ci"]
    assert gates["membership_audit"].passed == (check.figures["audit_auc"] == 0.5 or low <= 0.5 <= high)
    lenient = replace(CONFIG, max_perplexity_increase=100.0, max_overforgetting_loss=100.0, audit_margin=0.5,
                      exposure_alpha=0.0)
    assert all(g.passed for g in request_gates(lineage["original"], lineage["retrained"], lineage["forget"],
                                               lineage["retain"], data, "cpu", lenient, None).gates)


def test_the_exposure_gate_fails_a_canary_still_exposed_or_pushed_below_every_filling():
    def rows(*exposures):
        return [{"canary": i, "exposure_before": 9.0, "exposure_after": e, "p_if_never_seen": 2.0 ** -e}
                for i, e in enumerate(exposures)]

    # two canaries, alpha 0.05: each p and 1 - p must be >= 0.0125, i.e. exposure <= log2(80) = 6.32 bits
    assert exposure_gate(rows(1.0, 6.0), 0.05).passed
    still = exposure_gate(rows(1.0, 6.5), 0.05)
    assert not still.passed and "canary 1: exposure 9.00 -> 6.50" in still.detail
    assert not exposure_gate(rows(1.0, 0.001), 0.05).passed  # p = 0.9993: below nearly every filling
    assert not exposure_gate(rows(1.0, float("nan")), 0.05).passed  # a diverged model
    assert exposure_gate(rows(5.0), 0.05).passed and not exposure_gate(rows(5.6), 0.05).passed  # one: log2(40) = 5.32
def test_a_retrain_looks_like_unseen_fillings_of_the_template_and_the_original_does_not(lineage):
    """The audit's reference for canaries, on real models: the original memorized its canaries (F's loss far below
    unseen fillings), a retrain without them treats them as any filling."""
    data, forget = lineage["data"], lineage["forget"]
    check = request_gates(lineage["original"], lineage["retrained"], forget, lineage["retain"], data, "cpu", CONFIG,
                          lineage["exact"])
    figures = check.figures
    # measured: AUC 1.0 on the original, 0.55 on the retrain (95% CI 0.10-1.00: two distinct sequences); the
    # retrain's F loss 4.50 nats against its reference's 4.50, the original's 1.39
    assert figures["audit_auc_before"] > 0.9 and abs(figures["audit_auc"] - 0.5) < 0.3
    assert abs(figures["forget_loss"] - figures["reference_loss"]) < 0.5
    assert figures["forget_loss"] - figures["forget_loss_before"] > 2.0


def test_canary_fillings_are_the_template_with_secrets_no_canary_of_d_holds(lineage):
    data = lineage["data"]
    fillings = canary_fillings(50, data, seed=0)
    copy_tokens = data.train.select_ids(data.canary_ids).tokens  # (copies, T)
    assert fillings.tokens.shape == (50, copy_tokens.shape[1]) and (fillings.example_ids < 0).all()
    assert not (fillings.tokens[:, None, :] == copy_tokens[None]).all(-1).any()  # no filling is a canary of D
    prefix = int((copy_tokens[0] == copy_tokens[1]).long().cumprod(0).sum())  # where the secrets start to differ
    assert prefix > 2 and (fillings.tokens[:, :prefix - 1] == copy_tokens[0, :prefix - 1]).all()
    assert (fillings.tokens != data.info.pad_id).sum(1).tolist() == [int((copy_tokens[0] != data.info.pad_id).sum())] * 50
    assert canary_fillings(50, data, seed=0).tokens.equal(fillings.tokens)  # seeded


def test_the_retrain_reference_of_corpus_text_pairs_a_hard_sequence_with_held_out_sequences_the_model_finds_hard(
        lineage):
    data = lineage["data"]
    heldout = data.validation
    corpus = data.train.drop_ids(data.canary_ids).take([0, 1])
    start_ll = -score_sequences(lineage["original"], heldout, data.info.pad_id)["loss"].to_numpy()
    train_ll = np.linspace(-6.0, -1.0, 100)  # D's out-of-subset log-likelihoods
    hardest = OutOfSubset(np.array([-6.0, -6.0]), train_ll)  # both below every other example of D
    reference, words = reference_of(corpus, heldout, start_ll, hardest, data, CONFIG)
    # rank 0-1% of D -> the held-out sequences in the lowest 1% (here: the lowest one or two) by the model's -loss
    assert len(reference) == 2 * CONFIG.heldout_per_example and words.startswith("held-out sequences matched")
    by_id = pd.Series(start_ll, index=heldout.example_ids.numpy())
    assert by_id[reference.example_ids.numpy()].max() <= np.sort(start_ll)[1]
    missing = OutOfSubset(np.array([np.nan, -6.0]), train_ll)
    _, words = reference_of(corpus, heldout, start_ll, missing, data, CONFIG)
    assert "random held-out sequences for 1 (no out-of-subset model)" in words
    _, words = reference_of(corpus, heldout, start_ll, hardest, data, replace(CONFIG, reference="class"))
    assert words == "random held-out sequences for 2 (no out-of-subset model)"
    out = out_of_subset(lineage["exact"], lineage["forget"].example_ids.numpy(), OUT_OF_SUBSET)
    table = lineage["exact"].set_index("example_id")[OUT_OF_SUBSET]
    assert np.array_equal(out.forget, table.reindex(lineage["forget"].example_ids.numpy()).to_numpy(), equal_nan=True)


def test_exposure_rows_name_only_the_canaries_the_request_touches(lineage):
    data, original = lineage["data"], lineage["original"]
    one_copy = data.canaries[data.canaries["copies"] == 8]["example_id"].to_numpy()[:3]
    rows = exposure_rows(original, original, data.train.select_ids(one_copy), data)
    assert [(r["canary"], r["copies"], r["copies_forgotten"]) for r in rows] == [(1, 8, 3)]
    corpus = data.train.take([0, 1])
    assert exposure_rows(original, original, corpus, data) == []


def test_a_versions_text_proxy_is_the_sequences_final_confidence_or_loss(lineage):
    data, model = lineage["data"], lineage["original"]
    loss = score_sequences(model, data.train, data.info.pad_id).set_index("example_id")["loss"]
    confidence = lineage["modality"].final_model_scores(model, data, "final_confidence", "cpu")
    pd.testing.assert_series_equal(confidence, -np.exp(-loss), check_names=False)  # higher = more memorized
    pd.testing.assert_series_equal(sequence_proxy(model, data.train, data.info.pad_id, "final_loss"), loss,
                                   check_names=False)
    with pytest.raises(ConfigError, match="requests.proxy: 'final_margin' reads class probabilities"):
        sequence_proxy(model, data.train, data.info.pad_id, "final_margin")


def test_the_text_gates_thresholds_are_checked():
    with pytest.raises(ConfigError, match="requests.max_overforgetting_loss: got -1"):
        replace(CONFIG, max_overforgetting_loss=-1.0).validate()
    with pytest.raises(ConfigError, match=r"requests.exposure_alpha: got 2.0; write a number in \[0, 1\]"):
        replace(CONFIG, exposure_alpha=2.0).validate()
