"""Training loop, learning-event recorder (docs/methods.md §2.1) and checkpoints."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from memunlearn.models import MODELS, build_model
from memunlearn.training import LearningEventRecorder, load_checkpoint, save_checkpoint


def test_recorder_keeps_running_means_per_example():
    recorder = LearningEventRecorder(torch.tensor([10, 11, 12]))
    logits_a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    logits_b = torch.tensor([[0.0, 3.0]])
    recorder(torch.tensor([0, 1]), logits_a, torch.tensor([0, 0]))
    recorder(torch.tensor([0]), logits_b, torch.tensor([0]))
    frame = recorder.to_frame().set_index("example_id")
    p_a, p_b = F.softmax(logits_a, 1), F.softmax(logits_b, 1)
    assert frame.loc[10, "confidence"] == pytest.approx(float((p_a[0, 0] + p_b[0, 0]) / 2))
    assert frame.loc[10, "binary_acc"] == pytest.approx(0.5)  # right once, wrong once
    assert frame.loc[11, "max_conf"] == pytest.approx(float(p_a[1].max()))
    entropy = -(p_a[1] * p_a[1].log()).sum()
    assert frame.loc[11, "entropy"] == pytest.approx(float(entropy))
    assert frame["n_events"].tolist() == [2, 1, 0]


@pytest.mark.parametrize("name", MODELS.names())
def test_models_map_images_to_logits_and_embeddings(name):
    model = build_model(name, in_channels=3, num_classes=7, image_size=32, seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 7)
    assert torch.allclose(model.head(model.embed(x)), model(x))
    again = build_model(name, in_channels=3, num_classes=7, image_size=32, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_checkpoint_round_trip_and_corrupt_file(tmp_path, synthetic):
    info = synthetic[2]
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=3)
    path = tmp_path / "model.pt"
    save_checkpoint(model, "small_cnn", info, path)
    loaded, name = load_checkpoint(path, "train")
    assert name == "small_cnn"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(RuntimeError, match=r"model.pt is unreadable .* rerun `dvc repro --force train`"):
        load_checkpoint(path, "train")


def test_one_batching_helper_covers_the_split_once_in_batch_positions_order(synthetic):
    from memunlearn.data import normalize
    from memunlearn.seeding import generator
    from memunlearn.training.loop import batch_positions, normalized_batches

    train, _, info, _ = synthetic
    got = list(normalized_batches(train, info, 50, torch.device("cpu"), generator(0, "t")))
    expected = list(batch_positions(len(train), 50, generator(0, "t")))  # the same draws, in the same order
    assert all(torch.equal(p, e) for (p, _, _), e in zip(got, expected)) and len(got) == len(expected)
    positions, x, y = got[0]
    assert torch.equal(x, normalize(train.images[positions], info)) and torch.equal(y, train.labels[positions])


def test_predict_proba_is_the_softmax_of_predict_logits_and_equals_a_per_batch_softmax(synthetic):
    from memunlearn.training.loop import normalized_batches, predict_logits, predict_proba

    train, _, info, _ = synthetic
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0).eval()
    cpu = torch.device("cpu")
    with torch.no_grad():  # the softmax taken batch by batch, as predict_proba did before it was built on logits
        per_batch = torch.cat([F.softmax(model(x), dim=1) for _, x, _ in normalized_batches(train, info, 64, cpu)])
    assert torch.equal(predict_proba(model, train, info, cpu, 64), per_batch)
    assert torch.equal(predict_proba(model, train, info, cpu, 64), F.softmax(predict_logits(model, train, info, cpu, 64), 1))


def test_train_oracle_is_the_retrain_method(synthetic):
    from memunlearn.training import TrainConfig
    from memunlearn.training.oracle import OracleConfig, train_oracle
    from memunlearn.unlearning import METHODS, UnlearnContext

    train, _, info, flipped = synthetic
    recipe = TrainConfig(model="small_cnn", epochs=1, batch_size=32, device="cpu")
    retain, cpu = train.drop_ids(flipped), torch.device("cpu")
    oracle = train_oracle(retain, info, recipe, cpu, OracleConfig(seed=3).seed)
    method = METHODS.get("retrain")
    same = method.run(None, train.select_ids(flipped), retain, method.config({}), UnlearnContext(info, recipe, cpu, 3))
    assert all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(), same.state_dict().values()))
    # with oracle.recipe set, the method retrains with it, not with the original's recipe (here 2 epochs at 0.1)
    ctx = UnlearnContext(info, dataclasses.replace(recipe, epochs=2, lr=0.1), cpu, 3).with_oracle_recipe(recipe)
    assert ctx.oracle_recipe == recipe and ctx.with_oracle_recipe(ctx.recipe).oracle_recipe is None
    again = method.run(None, train.select_ids(flipped), retain, method.config({}), ctx)
    assert all(torch.equal(a, b) for a, b in zip(oracle.state_dict().values(), again.state_dict().values()))


def test_cached_oracle_trains_once_per_identical_oracle_and_keeps_its_seconds(synthetic, tiny_recipe, tmp_path):
    """The oracle stage and the ablations grid's first mixed forget set share an oracle: the second one loads it."""
    import dataclasses

    from memunlearn.training.oracle import cached_oracle, train_oracle

    train, _, info, flipped = synthetic
    retain = train.drop_ids(flipped)
    first, seconds, cached = cached_oracle(retain, info, tiny_recipe, torch.device("cpu"), 0, tmp_path)
    again, seconds_again, cached_again = cached_oracle(retain, info, tiny_recipe, torch.device("cpu"), 0, tmp_path)
    assert (cached, cached_again) == (False, True) and seconds_again == seconds > 0
    fresh = train_oracle(retain, info, tiny_recipe, torch.device("cpu"), 0)
    for model in (first, again):  # the cached model is the model training gives
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    other_recipe = dataclasses.replace(tiny_recipe, lr=tiny_recipe.lr / 2)
    for args in ((retain, 1, tiny_recipe), (train.drop_ids(flipped[:1]), 0, tiny_recipe), (retain, 0, other_recipe)):
        _, _, hit = cached_oracle(args[0], info, args[2], torch.device("cpu"), args[1], tmp_path)
        assert not hit  # another seed, another R or another recipe is another oracle
    assert len(list(tmp_path.iterdir())) == 4


def test_oracle_identity_holds_the_precision_auto_resolves_to(synthetic, tiny_recipe):
    """The oracle cache and the subset-model store key a recipe the same way (training.recipe.recipe_identity)."""
    import dataclasses

    from memunlearn.training.oracle import oracle_identity as oracle_key
    from memunlearn.training.recipe import resolved

    retain = synthetic[0]
    auto = dataclasses.replace(tiny_recipe, precision="auto")
    with pytest.raises(ValueError, match="concrete train.precision"):
        oracle_key(retain, auto, 0)
    resolved_key = oracle_key(retain, resolved(auto, torch.device("cpu")), 0)
    concrete = dataclasses.replace(tiny_recipe, precision=resolved(auto, torch.device("cpu")).precision)
    assert resolved_key == oracle_key(retain, concrete, 0)
    assert oracle_key(retain, dataclasses.replace(concrete, device="cuda"), 0) == resolved_key  # device: not identity
    other = "fp32" if concrete.precision == "bf16" else "bf16"
    assert oracle_key(retain, dataclasses.replace(concrete, precision=other), 0) != resolved_key
