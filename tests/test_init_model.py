"""Start from a model trained elsewhere (``train.init``): each accepted form saved locally and loaded back with
the same weights (the project's checkpoint, a bare state dict, a torchvision module's own state dict, a registered
MLflow model), the library wrapper's embed/head contract, and one-line errors naming ``train.init`` and what
differs. Nothing is downloaded."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from memunlearn.data import DatasetInfo
from memunlearn.sources import content_fingerprint, init_fingerprint, same_as_fingerprinted
from memunlearn.memorization.proxies import final_model_proxies
from memunlearn.models import build_model, model_modality
from memunlearn.models.init import load_image_init, registry_weights
from memunlearn.params import check_params
from memunlearn.training import TrainConfig, save_checkpoint
from memunlearn.training.first_epoch_grads import penultimate_module, select_parameters
from memunlearn.training.recipe import recipe_identity

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
GRAY = DatasetInfo("synthetic", 4, 1, 8, (0.5,), (0.25,))  # 1 channel, 4 classes, 8 px
RGB = DatasetInfo("synthetic_rgb", 4, 3, 32, (0.5,) * 3, (0.25,) * 3)


def no_registry(uri):
    raise AssertionError(f"a path must not reach the registry ({uri})")


def same_weights(a: torch.nn.Module, b: dict) -> bool:
    state = a.state_dict()
    return state.keys() == b.keys() and all(torch.equal(state[k], b[k]) for k in state)


def trained_elsewhere(name="small_cnn", info=GRAY, seed=3) -> torch.nn.Module:
    """A model with weights no build of seed 0 has (the loader builds seed 0 before loading)."""
    return build_model(name, info.in_channels, info.num_classes, info.image_size, seed=seed)


def test_the_projects_checkpoint_loads_with_its_weights(tmp_path):
    model = trained_elsewhere()
    save_checkpoint(model, "small_cnn", GRAY, tmp_path / "model.pt")
    loaded, what = load_image_init("model.pt", "small_cnn", GRAY, tmp_path, no_registry)
    assert same_weights(loaded, model.state_dict()) and "memunlearn checkpoint" in what
    assert not same_weights(build_model("small_cnn", 1, 4, 8, seed=0), model.state_dict())  # the test can fail


def test_a_bare_state_dict_loads_by_absolute_path(tmp_path):
    model = trained_elsewhere()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    loaded, what = load_image_init(str(tmp_path / "weights.pt"), "small_cnn", GRAY, tmp_path / "elsewhere",
                                   no_registry)
    assert same_weights(loaded, model.state_dict()) and "state dict" in what


def test_a_torchvision_modules_own_state_dict_loads_into_its_wrapper(tmp_path):
    """train.model torchvision/resnet18 + weights saved from torchvision's own ResNet (keys conv1.*, fc.*): the
    wrapped model computes what the torchvision module computes."""
    net = torchvision.models.resnet18(num_classes=4)
    torch.manual_seed(1)
    with torch.no_grad():
        net.fc.weight.normal_()  # a head no fresh build has
    torch.save(net.state_dict(), tmp_path / "resnet.pt")
    loaded, _ = load_image_init("resnet.pt", "torchvision/resnet18", RGB, tmp_path, no_registry)
    x = torch.randn(2, 3, 32, 32)
    net.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)
        assert torch.equal(loaded.head.weight, net.fc.weight)
        assert torch.allclose(loaded.head(loaded.embed(x)), net(x), atol=1e-5)  # forward = head(embed(x))


def test_a_library_model_keeps_the_head_embed_contract():
    """embed (B, D) and the Linear head that DEL keeps trainable; first-epoch gradients find head and penultimate;
    a 1-channel dataset gets a 1-channel first conv."""
    model = build_model("torchvision/resnet18", 1, 4, 28, seed=0)
    x = torch.randn(2, 1, 28, 28)
    assert model.embed(x).shape == (2, 512) and model(x).shape == (2, 4)
    assert isinstance(model.head, torch.nn.Linear) and model_modality("torchvision/resnet18") == "image"
    assert penultimate_module(model).startswith("net.layer4")
    assert {"head.weight", "head.bias"} <= set(select_parameters(model, ["head"]))


def test_a_library_architecture_without_a_linear_head_is_refused():
    with pytest.raises(ValueError, match=r"train.model: 'torchvision/squeezenet1_0' has no final nn.Linear.*DEL"):
        build_model("torchvision/squeezenet1_0", 3, 4, 32, seed=0)


def test_timm_names_the_missing_package():
    with pytest.raises(ValueError, match=r"train.model: the 'timm' package is not installed; `pip install timm`"):
        build_model("timm/resnet18", 3, 4, 32, seed=0)


def test_a_registered_mlflow_model_loads_through_the_registry(tmp_path):
    """models:/<name>@<alias>: the weights the train stage registered (tracking.py) load back."""
    from memunlearn.tracking import (ModelRecord, StageRecord, TrackingTarget, load_state_dict, record_stage,
                                     resolve_version, store_location)

    uri, artifacts = store_location(tmp_path)
    target = TrackingTarget(uri, artifacts, experiment="test", group_key="g", tags={})
    model = trained_elsewhere().eval()
    record_stage(StageRecord("train", models={"original_model": ModelRecord(model, "original", GRAY,
                                                                            {"model": "small_cnn"})}), target)
    weights = lambda name: load_state_dict(target, resolve_version(target, name))  # noqa: E731
    loaded, what = load_image_init("models:/test-original@latest", "small_cnn", GRAY, tmp_path, weights)
    assert same_weights(loaded, model.state_dict()) and "registered MLflow model" in what
    ref = resolve_version(target, "models:/test-original@latest")  # as the sources stage records it
    fingerprint = {"init": "models:/test-original@latest", "name": ref.name, "version": ref.version,
                   "run_id": ref.run_id}
    assert same_as_fingerprinted("models:/test-original@latest", fingerprint, tmp_path) == fingerprint
    staged, _ = load_image_init("models:/test-original@latest", "small_cnn", GRAY, tmp_path,
                                registry_weights(fingerprint, lambda: target))  # the train stage's way
    assert same_weights(staged, model.state_dict())


def test_a_checkpoint_replaced_after_the_sources_stage_is_named(tmp_path):
    """The train stage loads train.init only as the sources stage fingerprinted it (DVC's dep of train)."""
    path = tmp_path / "w.pt"
    path.write_bytes(b"one")
    recorded = init_fingerprint("w.pt", tmp_path, no_registry)
    assert same_as_fingerprinted("w.pt", recorded, tmp_path) == recorded
    path.write_bytes(b"two")
    with pytest.raises(RuntimeError, match=r"^train.init: 'w.pt' changed since the sources stage fingerprinted it; "
                                           r"rerun `dvc repro train`$"):
        same_as_fingerprinted("w.pt", recorded, tmp_path)


@pytest.mark.parametrize("saved, info, model_name, expected", [
    (lambda: trained_elsewhere(info=dataclasses.replace(GRAY, num_classes=5)).state_dict(), GRAY, "small_cnn",
     r"train.init: 'w.pt' does not fit train.model 'small_cnn' on this data \(1 channel\(s\), 4 classes, 8 px\): "
     r"classes: 5 in train.init, 4 in the data"),
    (lambda: torchvision.models.resnet18(num_classes=4).state_dict(), dataclasses.replace(RGB, in_channels=1),
     "torchvision/resnet18", r"channels: 3 in train.init, 1 in the data"),
    (lambda: {"fc.weight": torch.zeros(2, 2)}, GRAY, "small_cnn",
     r"missing key\(s\).*1 unexpected key\(s\) \(fc.weight\)"),
    (lambda: torch.nn.Linear(2, 2), GRAY, "small_cnn", r"train.init: 'w.pt' is not a torch state dict"),
])
def test_weights_that_do_not_fit_are_one_line_naming_train_init(tmp_path, saved, info, model_name, expected):
    torch.save(saved(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match=expected) as error:
        load_image_init("w.pt", model_name, info, tmp_path, no_registry)
    assert "\n" not in str(error.value)


def test_a_checkpoint_of_another_architecture_or_data_shape_is_named(tmp_path):
    save_checkpoint(trained_elsewhere(), "small_cnn", GRAY, tmp_path / "cnn.pt")
    with pytest.raises(ValueError, match=r"'cnn.pt' is a 'small_cnn' checkpoint but train.model is 'resnet18_cifar'; "
                                         r"set train.model to 'small_cnn'"):
        load_image_init("cnn.pt", "resnet18_cifar", GRAY, tmp_path, no_registry)
    with pytest.raises(ValueError, match=r"was trained on 1 channel\(s\), 4 classes, 8 px; this data has 1 "
                                         r"channel\(s\), 4 classes, 16 px"):
        load_image_init("cnn.pt", "small_cnn", dataclasses.replace(GRAY, image_size=16), tmp_path, no_registry)


def test_a_missing_file_or_a_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train.init: 'nowhere.pt' does not exist"):
        load_image_init("nowhere.pt", "small_cnn", GRAY, tmp_path, no_registry)
    with pytest.raises(ValueError, match=r"train.init: '.' is a directory \(a Hugging Face model\?\)"):
        load_image_init(".", "small_cnn", GRAY, tmp_path, no_registry)


def test_the_fingerprint_follows_the_content_not_the_name(tmp_path):
    """A checkpoint rewritten at the same path changes the sources stage's data/init_source.json (so train
    reruns); rewriting the same bytes does not; a directory is hashed with its file names; a URI by the version it resolves to."""
    path = tmp_path / "w.pt"
    path.write_bytes(b"one")
    first = init_fingerprint("w.pt", tmp_path, no_registry)
    path.write_bytes(b"one")
    assert init_fingerprint("w.pt", tmp_path, no_registry) == first
    path.write_bytes(b"two")
    assert init_fingerprint("w.pt", tmp_path, no_registry)["sha256"] != first["sha256"]
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "a").write_bytes(b"x")
    before = content_fingerprint(tmp_path / "hf")["sha256"]
    (tmp_path / "hf" / "a").rename(tmp_path / "hf" / "b")
    assert content_fingerprint(tmp_path / "hf")["sha256"] != before
    assert init_fingerprint("", tmp_path, no_registry) == {"init": ""}
    assert init_fingerprint("models:/m@a", tmp_path, lambda uri: {"version": "7"}) == {"init": "models:/m@a",
                                                                                       "version": "7"}


def test_init_leaves_the_model_keys_of_subset_models_and_oracles_alone():
    recipe = TrainConfig(precision="fp32")
    assert recipe_identity(dataclasses.replace(recipe, init="w.pt")) == recipe_identity(recipe)
    assert "init" not in recipe_identity(recipe)


def test_proxies_that_need_training_records_are_skipped_with_the_reason():
    names = ["confidence", "loss_curvature", "final_loss", "holdout_retrain"]
    assert final_model_proxies(names, False, "") == (names, {})
    kept, skipped = final_model_proxies(names, False, "w.pt (state dict of small_cnn)")
    assert kept == ["final_loss", "holdout_retrain"] and set(skipped) == {"confidence", "loss_curvature"}
    assert "learning events" in skipped["confidence"] and "train.init" in skipped["confidence"]
    with pytest.raises(ValueError, match=r"proxies.names: \['confidence'\] need records.*set train.init to \"\""):
        final_model_proxies(["confidence", "final_loss"], True, "w.pt")


def test_check_names_first_epoch_ga_and_recorded_proxies_with_init():
    params = yaml.safe_load(REPO_PARAMS.read_text())
    assert check_params(params) == []
    params["train"]["init"] = "w.pt"
    params["unlearn"]["method"] = "first_epoch_ga"
    params["methods"].setdefault("first_epoch_ga", {})
    problems = check_params(params)
    assert any(p.startswith("unlearn.method: 'first_epoch_ga' (first_epoch_ga) ascends along first-epoch gradients")
               and "train.init" in p for p in problems)
    assert any(p.startswith("rum_compare.group_scores[0]: unknown score 'confidence'") and "train.init" in p
               for p in problems)
    params["train"]["init"] = ""
    assert not any("train.init" in p for p in check_params(params))


def test_only_first_epoch_ga_on_stored_gradients_conflicts_with_init():
    """The line the unlearn and grids stages raise before any work: named by its key; a language model's ascent on
    last-epoch gradients and every other method need nothing the loaded model lacks."""
    from memunlearn.unlearning.config import init_conflicts

    blocks = {"fega": {"method": "first_epoch_ga"}, "fega_last": {"method": "first_epoch_ga", "gradients": "last_epoch"},
              "finetune": {}}
    named = [("ablations.methods[0]", "fega"), ("ablations.methods[1]", "fega_last"), ("unlearn.method", "finetune")]
    lines = init_conflicts("w.pt", named, blocks)
    assert len(lines) == 1 and lines[0].startswith("ablations.methods[0]: 'fega' (first_epoch_ga) ascends")
    assert "train.init loads a model trained elsewhere ('w.pt')" in lines[0]
    assert init_conflicts("", named, blocks) == []
