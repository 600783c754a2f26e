"""Issue 14, item 2: a validation split for calibration and held-out data; the test set is for evaluation only."""
import pytest
import torch

from memunlearn.data import VALIDATION_FILE, PrepareConfig, load_validation, prepare, save_split
from memunlearn.models import build_model
from memunlearn.training import TrainConfig


@pytest.fixture(scope="module")
def without():
    return prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1), "unused")


def ids(split) -> set:
    return set(split.example_ids.tolist())


def test_validation_from_the_test_set_leaves_training_data_unchanged(without):
    data = prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1, validation_fraction=0.2), "unused")
    assert (len(data.validation), len(data.test)) == (200, 800)
    assert ids(data.validation).isdisjoint(ids(data.test))
    assert ids(data.validation) | ids(data.test) == ids(without.test)
    assert torch.equal(data.train.labels, without.train.labels)  # memorization scores stay valid
    assert torch.equal(data.train.example_ids, without.train.example_ids)
    again = prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1, validation_fraction=0.2), "unused")
    assert torch.equal(again.validation.example_ids, data.validation.example_ids)  # seeded


def test_validation_from_the_training_set_is_carved_before_noise_and_never_trained_on(without):
    data = prepare(PrepareConfig(noise_fraction=0.05, noise_seed=1, validation_fraction=0.1,
                                 validation_source="train"), "unused")
    assert (len(data.validation), len(data.train), len(data.test)) == (400, 3600, 1000)
    assert ids(data.validation).isdisjoint(ids(data.train))
    assert ids(data.validation) | ids(data.train) == ids(without.train)
    assert ids(data.validation).isdisjoint(set(data.flipped["example_id"]))  # clean labels
    assert len(data.flipped) == round(0.05 * 3600)


def test_no_validation_by_default_in_the_library_and_bad_values_rejected():
    assert prepare(PrepareConfig(max_train=50, max_test=20), "unused").validation is None
    with pytest.raises(ValueError, match="validation_fraction must be < 1"):
        PrepareConfig(validation_fraction=1.0).validate()
    with pytest.raises(ValueError, match="validation_source"):
        PrepareConfig(validation_fraction=0.1, validation_source="holdout").validate()


def test_missing_validation_split_names_the_parameter(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.validation_fraction > 0"):
        load_validation(tmp_path)


def test_unlearn_context_gives_methods_the_validation_split_not_the_test_set(tmp_path, synthetic):
    from memunlearn.unlearning.context import unlearn_context

    train, test, info, _ = synthetic
    prepared = tmp_path / "data/prepared"
    grads = tmp_path / "data/train/first_epoch_grads.pt"  # not recorded
    save_split(test, prepared / "test.npz")
    ctx = unlearn_context(info, TrainConfig(), torch.device("cpu"), 0, prepared, grads)
    assert ctx.heldout is None and ctx.first_epoch_grads is None  # no validation split: never the test set beside it
    validation = test.take(torch.arange(10))
    save_split(validation, prepared / VALIDATION_FILE)
    ctx = unlearn_context(info, TrainConfig(), torch.device("cpu"), 0, prepared, grads)
    assert torch.equal(ctx.heldout.example_ids, validation.example_ids)


def test_first_epoch_ga_without_validation_split_says_how_to_fix(synthetic):
    from memunlearn.training.first_epoch_grads import FirstEpochGrads
    from memunlearn.unlearning import METHODS, UnlearnContext

    train, _, info, flipped = synthetic
    grads = FirstEpochGrads(train.example_ids, torch.zeros(len(train), 1), ("head.bias",), ((1,),))
    ctx = UnlearnContext(info, TrainConfig(), torch.device("cpu"), 0, first_epoch_grads=grads, heldout=None)
    model = build_model("small_cnn", 1, info.num_classes, info.image_size, seed=0)
    method = METHODS.get("first_epoch_ga")
    with pytest.raises(ValueError, match=r"the validation split\); set data.validation_fraction > 0"):
        method.run(model, train.select_ids(flipped), train.drop_ids(flipped), method.config({}), ctx)
