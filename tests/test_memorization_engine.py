"""The exact-memorization engine: stacked training, runners (local, Prefect, Dask) and influence."""
from __future__ import annotations

import copy
import os

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from memunlearn.memorization import ExactConfig, Execution, SubsetModelOutputs, top_influences, train_subset_models
from memunlearn.models import build_model
from memunlearn.seeding import generator
from memunlearn.training import TrainConfig, fit
from memunlearn.training.recipe import Augment
from memunlearn.training.stacked import StackingError, fit_stacked, stack_models, unstack_into

CPU = torch.device("cpu")
RECIPE = TrainConfig(model="small_cnn", epochs=8, batch_size=32, lr=0.05, weight_decay=5e-4, lr_milestones=(6,),
                     device="cpu")


@pytest.mark.parametrize("name", ["small_cnn", "resnet18_cifar"])
def test_stacked_forward_equals_each_model(name):
    models = [build_model(name, 1, 4, 8, seed=k).eval() for k in range(3)]
    stacked = stack_models(models).eval()
    x = torch.randn(5, 3, 1, 8, 8)  # (B, M, C, H, W): each model its own inputs
    out = stacked(x.reshape(5, 3, 8, 8)).reshape(5, 3, 4)
    for m, model in enumerate(models):
        torch.testing.assert_close(out[:, m], model(x[:, m]), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("extra", [{}, {"augment": Augment(crop_padding=2, flip=True)},
                                   {"augment": Augment(crop_padding=2, flip=True), "lr_schedule": "cosine",
                                    "lr_milestones": ()}], ids=["plain", "augmented", "augmented-cosine"])
def test_stacked_training_equals_training_each_model_alone(synthetic, extra):
    """Same init, subsets and data order (and model m's crops and flips drawn from its own generator): the
    stack's model m is the loop's model m, to rounding."""
    train, _, info, _ = synthetic
    recipe = TrainConfig(**{**RECIPE.__dict__, "epochs": 2, **extra})
    subsets = [torch.randperm(len(train), generator=generator(0, "s", k))[:150] for k in range(3)]
    alone = [build_model("small_cnn", 1, 4, 8, seed=k) for k in range(3)]
    stacked = stack_models(alone)
    fit_stacked(stacked, train, subsets, info, recipe, [generator(0, "o", k) for k in range(3)], CPU)
    back = [build_model("small_cnn", 1, 4, 8, seed=99) for _ in range(3)]
    unstack_into(stacked, back)
    for k, model in enumerate(alone):
        fit(model, train.take(subsets[k]), info, recipe, generator(0, "o", k), CPU)
        for (name, expected), got in zip(model.state_dict().items(), back[k].state_dict().values()):
            torch.testing.assert_close(got, expected, atol=2e-4, rtol=1e-3, msg=f"model {k} {name}")


def test_a_layer_that_cannot_be_stacked_is_named():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.LayerNorm([4, 6, 6]))
    with pytest.raises(StackingError, match=r"'1' \(LayerNorm\).*memorize.stack: 1"):
        stack_models([model, copy.deepcopy(model)])


def test_stacked_jobs_give_the_loop_s_scores(synthetic):
    train, test, info, _ = synthetic
    loop = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=3, stack=1), CPU).runs
    stacked = train_subset_models(train, test, info, RECIPE, ExactConfig(num_models=3, stack=3), CPU).runs
    for a, b in zip(loop, stacked):
        assert a.index == b.index and np.array_equal(a.mask, b.mask)
        assert (a.train_correct == b.train_correct).mean() > 0.97
        np.testing.assert_allclose(a.train_true_prob, b.train_true_prob, atol=0.05)


@pytest.mark.parametrize("variable, value, fix", [
    ("MEMUNLEARN_RUNNER", "ray", "choose one of local, prefect, dask"),
    ("MEMUNLEARN_WORKERS", "two", "set a whole number >= 1"),
    ("MEMUNLEARN_WORKERS", "0", "set a whole number >= 1"),
    ("MEMUNLEARN_WORKERS", "²", "set a whole number >= 1"),
    ("MEMUNLEARN_DASK_ADDRESS", "10.0.0.5:8786", "with its protocol"),
])
def test_a_bad_execution_variable_is_one_line_naming_it_and_the_fix(variable, value, fix):
    environ = {variable: value, "MEMUNLEARN_RUNNER": "dask"} if variable.endswith("ADDRESS") else {variable: value}
    with pytest.raises(ValueError) as error:
        Execution.from_environment(environ)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{variable}: got {value!r}; ") and fix in message
    assert f"export {variable}=" in message


def test_execution_comes_from_the_environment_and_defaults_to_one_local_process():
    assert Execution.from_environment({}) == Execution("local", 1, "")
    got = Execution.from_environment({"MEMUNLEARN_RUNNER": "dask", "MEMUNLEARN_WORKERS": "3",
                                      "MEMUNLEARN_DASK_ADDRESS": "tcp://10.0.0.5:8786", "OTHER": "x"})
    assert got == Execution("dask", 3, "tcp://10.0.0.5:8786")
    with pytest.raises(ValueError, match="MEMUNLEARN_DASK_ADDRESS: set, but MEMUNLEARN_RUNNER is 'local'"):
        Execution.from_environment({"MEMUNLEARN_DASK_ADDRESS": "tcp://10.0.0.5:8786"})


def test_workers_side_by_side_share_the_cores_unless_threads_are_pinned(synthetic):
    train, test, info, _ = synthetic
    auto, pinned = ExactConfig(threads_per_worker=0), ExactConfig(threads_per_worker=3)
    assert {job.threads for job in auto.jobs([0, 1], train, test, info, RECIPE, CPU, workers=1)} == {0}
    cores = max(1, (os.cpu_count() or 1) // 2)
    assert {job.threads for job in auto.jobs([0, 1], train, test, info, RECIPE, CPU, workers=2)} == {cores}
    assert {job.threads for job in pinned.jobs([0, 1], train, test, info, RECIPE, CPU, workers=2)} == {3}


@pytest.fixture(scope="module")
def prefect_harness(tmp_path_factory, monkeypatch_module):
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch_module.setenv("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect_home")))
    with prefect_test_harness(server_startup_timeout=180):  # Prefect waits 30 s: too short on a busy machine
        yield


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _equal_runs(a: list[SubsetModelOutputs], b: list[SubsetModelOutputs]) -> bool:
    return all(np.array_equal(x.mask, y.mask) and np.array_equal(x.train_true_prob, y.train_true_prob)
               and np.array_equal(x.test_true_prob, y.test_true_prob) for x, y in zip(a, b))


def test_prefect_process_and_dask_cluster_runs_equal_the_local_run(synthetic, prefect_harness, tmp_path):
    from distributed import LocalCluster

    from memunlearn.memorization.runners import prefect_runner

    train, test, info, _ = synthetic
    recipe = TrainConfig(**{**RECIPE.__dict__, "epochs": 3})
    local = ExactConfig(num_models=3, threads_per_worker=1)  # one thread everywhere: bit-identical results
    expected = train_subset_models(train, test, info, recipe, local, CPU).runs
    with (tmp_path / "progress.log").open("w") as progress:  # like the stage's progress bar: an open file that
        def on_model(run, reused):  # cannot be pickled, so it must stay in this process
            progress.write(f"{run.index}\n")

        processes = Execution(runner="prefect", workers=2)
        got = train_subset_models(train, test, info, recipe, local, CPU, runner=prefect_runner(processes),
                                  workers=2, on_model=on_model)
        assert got.trained == [0, 1, 2] and _equal_runs(expected, got.runs)

        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
            dask = Execution(runner="dask", dask_address=cluster.scheduler_address)
            got = train_subset_models(train, test, info, recipe, local, CPU, runner=prefect_runner(dask),
                                      on_model=on_model)
        assert got.trained == [0, 1, 2] and _equal_runs(expected, got.runs)
    assert sorted((tmp_path / "progress.log").read_text().split()) == ["0", "0", "1", "1", "2", "2"]


def _runs_from(masks: np.ndarray, test_correct: np.ndarray) -> list[SubsetModelOutputs]:
    n = masks.shape[1]
    return [SubsetModelOutputs(k, masks[k], np.zeros(n, np.float32), np.zeros(n, bool),
                               test_correct[k].astype(np.float32), test_correct[k]) for k in range(len(masks))]


def test_influence_finds_the_training_example_a_test_example_depends_on():
    """Test example j is right exactly when training example 3*j was in the subset: infl(3j, j) = 1, the top."""
    rng = np.random.default_rng(0)
    masks = rng.random((60, 30)) < 0.7  # (K, N)
    test_correct = masks[:, ::3]  # (K, 10)
    table = top_influences(_runs_from(masks, test_correct), np.arange(30) + 100, np.arange(10) + 500, top=4)
    top1 = table[table["rank"] == 1].set_index("test_id")
    assert list(top1["train_id"]) == [100 + 3 * j for j in range(10)]
    np.testing.assert_allclose(top1["influence"], 1.0)
    assert len(table) == 40 and table.groupby("test_id")["influence"].is_monotonic_decreasing.all()


def test_influence_equals_the_dense_estimator_in_chunks():
    rng = np.random.default_rng(1)
    masks, test_correct = rng.random((25, 12)) < 0.6, rng.random((25, 7)) < 0.5
    m, c = masks.astype(float), test_correct.astype(float)
    dense = (m.T @ c) / m.sum(0)[:, None] - ((1 - m).T @ c) / (1 - m).sum(0)[:, None]  # (N, M)
    table = top_influences(_runs_from(masks, test_correct), np.arange(12), np.arange(7), top=12, chunk=3)
    got = table.pivot(index="train_id", columns="test_id", values="influence").to_numpy()
    np.testing.assert_allclose(got, dense, atol=1e-6)
    assert isinstance(table, pd.DataFrame)


@pytest.mark.parametrize("stack", [1, 2])
def test_one_eval_pass_over_d_and_t_gives_the_separate_passes_scores(synthetic, stack):
    """The engine scores D and T in one pass per model (or stack); a pass over each split alone, as before, gives
    the same probabilities: bit for bit here, and never more than 1e-6 apart (only the eval batches differ)."""
    from memunlearn.memorization.engine import subset_mask
    from memunlearn.seeding import derive_seed
    from memunlearn.training.loop import normalized_inputs, predict_proba
    from memunlearn.training.stacked import predict_proba_stacked

    train, test, info, _ = synthetic
    recipe = TrainConfig(**{**RECIPE.__dict__, "epochs": 2})
    runs = train_subset_models(train, test, info, recipe, ExactConfig(num_models=2, stack=stack), CPU).runs
    masks = [subset_mask(len(train), 0.7, 0, k) for k in range(2)]  # ExactConfig's defaults: p 0.7, seed 0
    models = [build_model("small_cnn", info.in_channels, info.num_classes, info.image_size,
                          seed=derive_seed(0, "subset_model_init", k)).to(memory_format=recipe.memory_format)
              for k in range(2)]
    orders = [generator(0, "subset_model_order", k) for k in range(2)]
    if stack == 1:  # the engine before: each split normalized and scored on its own
        separate = []
        for model, mask, order in zip(models, masks, orders):
            inputs = {name: normalized_inputs(split, info, CPU, True) for name, split in (("d", train), ("t", test))}
            fit(model, train.take(mask), info, recipe, order, CPU, inputs=inputs["d"][mask])
            separate.append([predict_proba(model, split, info, CPU, inputs=inputs[name])
                             for name, split in (("d", train), ("t", test))])
    else:
        stacked = stack_models(models).to(memory_format=recipe.memory_format)
        fit_stacked(stacked, train, [m.nonzero().squeeze(1) for m in masks], info, recipe, orders, CPU,
                    inputs=normalized_inputs(train, info, CPU))
        d, t = (predict_proba_stacked(stacked, split, info, CPU, 2, inputs=normalized_inputs(split, info, CPU))
                for split in (train, test))
        separate = [(d[m], t[m]) for m in range(2)]
    for run, (d, t) in zip(runs, separate):
        for got, probs, split in ((run.train_true_prob, d, train), (run.test_true_prob, t, test)):
            expected = probs.gather(1, split.labels.view(-1, 1)).squeeze(1).numpy()
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
            assert np.array_equal(got, expected), f"max difference {np.abs(got - expected).max():.2e}"
