"""The modality layer: one params switch picks text, `memunlearn check` names every combination that does not
apply in one line, and the shared unlearning methods take text splits (docs/architecture.md, "Modalities")."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from memunlearn.config import used_methods, with_preset
from memunlearn.data.text import TextInfo, TextSplit
from memunlearn.memorization.proxies import ProxyConfig, ProxyInputs, compute_proxies
from memunlearn.modality import MODALITIES
from memunlearn.modality.applies import PROXIES
from memunlearn.models import build_lm
from memunlearn.params import check_params
from memunlearn.training.events import EVENT_COLUMNS
from memunlearn.modality.text.lm import LMTrainConfig, TokenEventRecorder, fit_lm, score_sequences
from memunlearn.training.recipe import TrainConfig
from memunlearn.unlearning import METHODS, UnlearnContext

ROOT = Path(__file__).resolve().parents[1]
IMAGE = yaml.safe_load((ROOT / "params.yaml").read_text())
PRESET = yaml.safe_load((ROOT / "params/text.yaml").read_text())


TEXT = with_preset(IMAGE, PRESET)


def test_params_yaml_and_the_text_preset_are_valid():
    assert check_params(IMAGE) == []
    assert check_params(TEXT) == []
    assert set(MODALITIES.names()) == {"image", "text"}


@pytest.mark.parametrize("base, update, key", [
    ("text", {"train": {"model": "small_cnn"}}, "train.model: 'small_cnn' is an image model"),
    ("image", {"train": {"model": "gpt2_tiny"}}, "train.model: 'gpt2_tiny' is a language model"),
    ("text", {"unlearn": {"method": "salun"}}, "unlearn.method: 'salun' does not apply to text"),
    ("text", {"unlearn": {"strategy": "rum"}}, "unlearn.subset_methods (empty: rum's reference, high: salun)"),
    ("text", {"unlearn": {"strategy": "rum", "subset_methods": {"high": "scrub"}}}, "unlearn.subset_methods.high"),
    ("text", {"partition": {"kind": "class"}}, "partition.kind: 'class' does not apply to text"),
    ("image", {"partition": {"kind": "canaries", "size": 0}}, "partition.kind: 'canaries' does not apply to image"),
    ("text", {"partition": {"group_score": "entanglement"}}, "partition.group_score: 'entanglement'"),
    ("text", {"proxies": {"names": ["loss_curvature", "confidence"]}}, "proxies.names[0]: 'loss_curvature'"),
    ("text", {"train_records": {"curvature": True}}, "train_records.curvature:"),
    ("text", {"train_records": {"first_epoch_grads": ["penultimate"]}}, "train_records.first_epoch_grads:"),
    ("text", {"memorize": {"num_models": "auto"}}, "memorize.num_models: auto"),
    ("text", {"train": {"precision": "bf16"}}, "train.precision:"),
    ("text", {"memorize": {"recipe": {"precision": "bf16"}}}, "memorize.recipe.precision:"),
    ("text", {"evaluate": {"mia_feature": "entropy"}}, "evaluate.mia_feature:"),
    ("text", {"data": {"noise_fraction": 0.05}}, "data.noise_fraction: does not apply to text corpus"),
    ("image", {"methods": {"first_epoch_ga": {"gradients": "last_epoch"}}},
     "methods.first_epoch_ga.gradients: 'last_epoch' is implemented for language models only"),
    ("image", {"methods": {"ga_last": {"method": "first_epoch_ga", "gradients": "last_epoch"}},
               "levels": {"methods": ["ga_last"]}}, "methods.ga_last.gradients: 'last_epoch'"),
    ("text", {"modality": "image"}, "modality: 'image', but data.dataset 'pydoc_topics' is a text corpus; set "
                                    "modality: text"),
    ("image", {"modality": "text"}, "modality: 'text', but data.dataset 'mnist_embedded' is an image dataset"),
    ("image", {"modality": "audio"}, "modality: got 'audio'; choose one of: image, text"),
])
def test_a_combination_that_does_not_apply_is_one_line_naming_the_key(base, update, key):
    problems = check_params(with_preset(TEXT if base == "text" else IMAGE, update))
    assert len(problems) == 1 and problems[0].startswith(key), problems
    assert "\n" not in problems[0]


def test_a_stage_refuses_prepared_data_of_another_modality(tmp_path):
    """The stages load their modality's code by the ``modality`` param and check the prepared data is of it."""
    from memunlearn.modality import load_modality

    assert load_modality("image", tmp_path).name == "image"  # no meta.json yet: nothing to contradict
    (tmp_path / "meta.json").write_text('{"modality": "text"}')
    assert load_modality("text", tmp_path).name == "text"
    with pytest.raises(ValueError, match=r"modality: 'image', but .* holds text data; run 'dvc repro prepare'"):
        load_modality("image", tmp_path)


# ---- the shared methods on text ---------------------------------------------------

PAD = 0


@pytest.fixture(scope="module")
def lm():
    """A gpt2_micro trained 3 epochs on 48 random 12-token sequences (vocabulary 300)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(2, 300, (48, 12), generator=g)
    data = TextSplit(tokens, torch.arange(48))
    model = build_lm("gpt2_micro", 300, 12, seed=0)
    events = TokenEventRecorder(data.example_ids, PAD)
    fit_lm(model, data, LMTrainConfig(model="gpt2_micro", epochs=3, batch_size=16), PAD,
           torch.Generator().manual_seed(1), on_batch=events)
    info = TextInfo("random", 300, 12, PAD, 1, "", "")
    return model, data, info, events


def test_token_learning_events_feed_the_learning_event_proxies(lm):
    _, data, info, events = lm
    frame = events.to_frame()
    assert list(frame.columns) == ["example_id", *EVENT_COLUMNS, "n_events"] and (frame["n_events"] == 3).all()
    table, _ = compute_proxies(list(PROXIES), ProxyInputs(data, None, info, None, None, ProxyConfig(),
                                                          learning_events=frame))
    assert set(PROXIES) <= set(table.columns) and table[list(PROXIES)].notna().all().all()


@pytest.mark.parametrize("name, forget_goes", [("neggrad", "up"), ("neggrad_plus", "up"), ("finetune", None)])
def test_methods_built_on_batches_and_ce_unlearn_a_language_model(lm, name, forget_goes):
    model, data, info, _ = lm
    forget, retain = data.take(torch.arange(8)), data.take(torch.arange(8, 48))
    method = METHODS.get(name)
    params = {"lr": 0.01, "epochs": 2, **({"alpha": 0.5} if name == "neggrad_plus" else {})}
    ctx = UnlearnContext(info, TrainConfig(model="gpt2_micro"), torch.device("cpu"), seed=0)
    before = {k: score_sequences(model, s, PAD)["loss"].mean() for k, s in (("f", forget), ("r", retain))}
    out = method.run(copy.deepcopy(model), forget, retain, method.config(params), ctx)
    after = {k: score_sequences(out, s, PAD)["loss"].mean() for k, s in (("f", forget), ("r", retain))}
    if forget_goes == "up":  # ascent on F: F's loss rises above R's more than before
        assert after["f"] - after["r"] > before["f"] - before["r"]
    else:
        assert after["r"] < before["r"]  # descent on R


def test_used_methods_name_every_method_the_run_uses_by_its_key():
    """One list serves the train.init, influence-size and modality checks (config.py ``used_methods``)."""
    params = with_preset(IMAGE, {"unlearn": {"strategy": "rum", "subset_methods": {"low": "none", "high": "ga"}},
                                 "forgetting_quality": {"method": "finetune"}, "requests": {"method": "req"},
                                 "levels": {"methods": ["a", 3, "b"]}})
    used = used_methods(params)
    assert ("unlearn.subset_methods.high", "ga") in used and ("unlearn.subset_methods.low", "none") in used
    assert ("levels.methods[0]", "a") in used and ("levels.methods[2]", "b") in used  # 3: the grid's check names it
    assert ("forgetting_quality.method", "finetune") in used and ("requests.method", "req") in used
    assert used[0] == ("unlearn.method", IMAGE["unlearn"]["method"])
    assert used_methods({"unlearn": "oops", "levels": {"methods": "x"}}) == []


@pytest.mark.parametrize("update", [
    {"requests": {"method": "ga_in"}},
    {"unlearn": {"strategy": "rum", "subset_methods": {"low": "none", "mid": "finetune", "high": "ga_in"}}},
])
def test_a_text_runs_first_epoch_ga_checks_read_subset_methods_and_requests(update):
    """A first_epoch_ga block used only by unlearn.subset_methods or requests.method is checked on text too."""
    bad = {"methods": {"ga_in": {"method": "first_epoch_ga", "layers": ["input"]}}}
    assert check_params(with_preset(TEXT, bad)) == []  # unused: nothing to check
    assert check_params(with_preset(TEXT, {**bad, **update})) == [
        "methods.ga_in.layers: 'input' names an image layer; for a language model use embedding, head, block:<i> "
        "or all, e.g. [embedding]"]


def test_all_epochs_gradients_are_refused_outside_a_text_grid():
    """Only a text grid's originals record all-epochs gradients: the unlearn stage and requests run on the
    pipeline's original, which stores first-epoch ones."""
    blocks = {"methods": {"ga_all": {"method": "first_epoch_ga", "gradients": "all_epochs", "layers": ["embedding"]}}}
    assert check_params(with_preset(TEXT, {**blocks, "ablations": {"methods": ["ga_all"]}})) == []
    assert check_params(with_preset(TEXT, {**blocks, "unlearn": {"method": "ga_all"}})) == [
        "unlearn.method: 'ga_all' reads all-epochs gradients (methods.ga_all.gradients: all_epochs), which only a "
        "text grid's originals record; list it in a grid's methods (e.g. ablations.methods) or set "
        "methods.ga_all.gradients: first_epoch"]
    refused = check_params(with_preset(TEXT, {**blocks, "requests": {"method": "ga_all"}, "unlearn": {
        "strategy": "rum", "subset_methods": {"low": "none", "mid": "finetune", "high": "ga_all"}}}))
    assert [p.split(":")[0] for p in refused] == ["unlearn.subset_methods.high", "requests.method"]


def test_train_init_conflicts_read_subset_methods_and_requests():
    blocks = {"methods": {"ga": {"method": "first_epoch_ga"}}, "train": {"init": "w.pt"}}
    problems = check_params(with_preset(IMAGE, {**blocks, "requests": {"method": "ga"}}))
    assert any(p.startswith("requests.method: 'ga' (first_epoch_ga) ascends along first-epoch gradients")
               for p in problems), problems
