"""The image modality's behaviour (modality/base.py ``Modality``): labelled images (data/prepare.py: subsample,
validation split, planted label noise) and a CNN trained with cross-entropy (training/loop.py).

The original model records learning events from the training forward passes and, per ``train_records``, loss
curvature and first-epoch per-example gradients. Each method imports what it runs, so a stage's DVC deps are the
code of the methods it calls (tests/test_stage_deps.py ``pipeline_names``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ...data import VALIDATION_FILE, DatasetInfo, ImageSplit, load_info, load_split, prepare, save_info, save_split
from ...data.owner_ids import save_owner_ids
from ...io import load_table, save_table
from ..base import NO_RECORDS, GridOriginal

IMAGE = "image"
FIRST_EPOCH_GRADS = "first_epoch_grads.pt"  # in the train stage's folder
PLANTED = "label_noise.csv"  # the planted-noise ids, in the prepared folder


@dataclass(frozen=True)
class PreparedImages:
    """An image run's prepared data (modality/base.py ``Prepared``)."""

    folder: Path
    train: ImageSplit
    validation: ImageSplit | None  # None when data.validation_fraction is 0
    test: ImageSplit
    info: DatasetInfo

    @property
    def planted(self) -> np.ndarray:
        """The examples whose labels the prepare stage flipped."""
        return load_table(self.folder / PLANTED, "prepare")["example_id"].to_numpy()

    def labels(self) -> pd.Series:
        return pd.Series(self.train.labels.numpy(), index=pd.Index(self.train.example_ids.numpy(), name="example_id"))


class ImageModality:
    name = IMAGE

    def prepare(self, config, raw: Path, out: Path) -> tuple[dict, list[Path]]:
        start = time.perf_counter()
        data = prepare(config, raw)
        seconds = time.perf_counter() - start
        save_split(data.train, out / "train.npz")
        save_split(data.test, out / "test.npz")
        (out / VALIDATION_FILE).unlink(missing_ok=True)  # no stale split when validation_fraction turns 0
        if data.validation is not None:
            save_split(data.validation, out / VALIDATION_FILE)
        save_table(data.flipped, out / PLANTED)
        save_owner_ids(data.owner_ids, out)
        save_info(data.info, out / "meta.json")
        return {
            "n_train": len(data.train), "n_test": len(data.test), "n_flipped": len(data.flipped),
            "n_validation": len(data.validation) if data.validation is not None else 0,
            "seconds": seconds,
        }, [out / "meta.json", out / PLANTED]

    def load(self, prepared: Path) -> PreparedImages:
        prepared = Path(prepared)
        validation = prepared / VALIDATION_FILE
        return PreparedImages(prepared, load_split(prepared / "train.npz"),
                              load_split(validation) if validation.exists() else None,
                              load_split(prepared / "test.npz"), load_info(prepared / "meta.json"))

    def train_original(self, data: PreparedImages, recipe, records, device, out: Path, on_row=None):
        from ...models import build_model
        from ...seeding import generator
        from ...training import (CurvatureRecorder, FirstEpochGradRecorder, LearningEventRecorder, accuracy, fit,
                                 predict_proba, save_checkpoint, save_first_epoch_grads)

        train, test, info = data.train, data.test, data.info
        model = build_model(recipe.model, info.in_channels, info.num_classes, info.image_size, seed=recipe.seed)
        save_checkpoint(model, recipe.model, info, out / "model_init.pt")
        events = LearningEventRecorder(train.example_ids)
        curvature = (CurvatureRecorder(train, info, device, records.curvature_h, records.curvature_batch_size,
                                       records.curvature_estimators, records.curvature_rademacher_h,
                                       records.curvature_draws, recipe.seed)
                     if records.curvature else None)
        first_epoch = (FirstEpochGradRecorder(model, train.example_ids, records.first_epoch_grads)
                       if records.first_epoch_grads else None)

        def end_of_epoch(epoch, model):
            row = {"test_acc": accuracy(predict_proba(model, test, info, device), test.labels)}
            return row | (curvature(epoch, model) if curvature else {})

        start = time.perf_counter()
        history = fit(model, train, info, recipe, generator(recipe.seed, "train_order"), device,
                      on_batch=events, on_epoch=end_of_epoch, on_step=first_epoch, on_row=on_row,
                      progress="train epochs")
        seconds = time.perf_counter() - start
        save_table(events.to_frame(), out / "learning_events.parquet")
        if curvature:
            save_table(curvature.to_frame(), out / "loss_curvature.parquet")
        if first_epoch:
            save_first_epoch_grads(first_epoch.result(), out / FIRST_EPOCH_GRADS)
        by_estimator = curvature.seconds_by_estimator if curvature else {}
        metrics = {
            "train_acc": accuracy(predict_proba(model, train, info, device), train.labels),
            "test_acc": history[-1]["test_acc"],
            "seconds": seconds,  # recording included
            "learning_event_seconds": events.seconds,
            "curvature_seconds": by_estimator.get("sign_gradient", 0.0),
            "curvature_rademacher_seconds": by_estimator.get("rademacher", 0.0),
            "first_epoch_grad_seconds": first_epoch.seconds if first_epoch else 0.0,
            "examples_processed": len(train) * recipe.epochs,
            "device": str(device),
        }
        return model, metrics, history, []

    def load_original(self, data: PreparedImages, recipe, device, root: Path, registry_weights):
        """The original trained elsewhere (``train.init``: models/init.py), with its train and test accuracy;
        no training records (``NO_RECORDS``)."""
        from ...models.init import load_image_init
        from ...training import accuracy, predict_proba

        start = time.perf_counter()
        model, loaded = load_image_init(recipe.init, recipe.model, data.info, root, registry_weights)
        return model, {
            "init": loaded, "seconds": time.perf_counter() - start,
            "train_acc": accuracy(predict_proba(model, data.train, data.info, device), data.train.labels),
            "test_acc": accuracy(predict_proba(model, data.test, data.info, device), data.test.labels),
            **NO_RECORDS, "device": str(device)}

    def save_model(self, model, name: str, info, path: Path) -> None:
        from ...training import save_checkpoint

        save_checkpoint(model, name, info, path)

    def load_model(self, path: Path, stage: str):
        from ...training import load_checkpoint

        return load_checkpoint(path, stage)

    def cached_oracle(self, retain, info, recipe, device, seed: int, cache: Path | None, on_row=None):
        from ...training.oracle import cached_oracle

        return cached_oracle(retain, info, recipe, device, seed, cache, on_row=on_row)

    def unlearn_context(self, data: PreparedImages, recipe, device, seed: int, train_dir: Path):
        from ...unlearning.context import unlearn_context

        return unlearn_context(data.info, recipe, device, seed, data.folder, Path(train_dir) / FIRST_EPOCH_GRADS)

    def score_sources(self, data: PreparedImages, exact, proxies, original: Path, device):
        from ...partition import score_sources

        return score_sources(data.train, self.load_model(original, "train")[0], data.info, exact, proxies, device,
                             data.planted)

    def describe_forget_set(self, config, forget, sources, data: PreparedImages) -> dict:
        from ...partition import describe_forget_set, entanglement_kinds_es

        return {**describe_forget_set(forget, sources, data.planted),
                "entanglement_kinds_es": entanglement_kinds_es(config, sources)}

    def memorize(self, data: PreparedImages, recipe, config, device, out: Path, plots: Path, subset_models):
        """Exact memorization from K leave-subset-out models (docs/methods.md §1), each kept in the persistent
        store: a rerun after a crash, or with a larger K, trains only the models that neither the store nor DVC
        (``subset_models.restore``) holds."""
        from tqdm import tqdm

        from ...memorization import SubsetModelStore, memorization_scores, top_influences, train_subset_models
        from ...memorization.convergence import convergence, plot_convergence
        from ...memorization.store import key_for
        from ...memorization.summary import memorize_summary
        from ...training.recipe import resolved

        train, test = data.train, data.test
        recipe = resolved(recipe, device)  # precision auto -> what this device runs: in the store key and metrics
        key = key_for(train, test, recipe, config, device)
        store = SubsetModelStore(subset_models.root, key, subset_models.timings)
        subset_models.restore(key, range(config.most_models))
        execution = subset_models.execution
        progress = tqdm(total=config.most_models, desc="subset models", unit="model")  # ETA from finished models
        start = time.perf_counter()
        result = train_subset_models(train, test, data.info, recipe, config, device, store,
                                     runner=subset_models.runner, workers=execution.workers,
                                     on_model=lambda run, reused: progress.update())
        seconds = time.perf_counter() - start
        progress.close()
        scores = memorization_scores(result.runs, train.example_ids.numpy())
        curve, stability = convergence(result.runs, train.example_ids.numpy())
        save_table(curve, out / "convergence.csv")
        artifacts = plot_convergence(curve, scores, plots)
        if config.influence_top:
            influence = top_influences(result.runs, train.example_ids.numpy(), test.example_ids.numpy(),
                                       config.influence_top)
            save_table(influence, out / "influence.parquet")
            artifacts.append(out / "influence.parquet")
        metrics = memorize_summary(result, scores, data.planted, stability, config, recipe, key, seconds, device,
                                   execution)
        return scores, metrics, artifacts

    def proxy_inputs(self, data: PreparedImages, config, train_dir: Path, device):
        from ...data import load_validation
        from ...memorization import ProxyInputs
        from ...memorization.proxies import PROXIES, recorded_proxies

        curvature_file = Path(train_dir) / "loss_curvature.parquet"
        curvature = load_table(curvature_file, "train") if curvature_file.exists() else None
        events_file = Path(train_dir) / "learning_events.parquet"  # absent when train.init loaded the original
        trained_here = events_file.exists()
        names = list(config.names) or (recorded_proxies(curvature) if trained_here else PROXIES.names())
        return names, ProxyInputs(
            train=data.train,
            # held-out data is the validation split (the test set is for evaluation only); only holdout_retrain
            # reads it
            heldout=load_validation(data.folder) if "holdout_retrain" in names else None,
            info=data.info, model=self.load_model(Path(train_dir) / "model.pt", "train")[0], device=device,
            config=config, learning_events=load_table(events_file, "train") if trained_here else None,
            curvature=curvature)

    def model_metrics(self, model, data: PreparedImages, parts, config, device) -> dict:
        from ...evaluation import model_metrics

        return model_metrics(model, parts.forget, parts.retain, data.test, parts.subsets, data.info, config, device)

    def grid_originals(self, data: PreparedImages, recipe, plans, train_dir: Path, cache, device):
        """The train stage's model for every seed: a cell's seed reseeds its unlearning only."""
        original = GridOriginal(self.load_model(Path(train_dir) / "model.pt", "train")[0],
                                self.unlearn_context(data, recipe, device, 0, train_dir))
        return lambda seed: original

    def observe(self, model, data: PreparedImages, parts, seed: int, device, path: Path):
        """The model's softmax outputs on F, R, T and each RUM subset (``<path>.npz``): every metric of the
        evaluate params is computed from them, so an evaluation setting never unlearns again."""
        from ...evaluation import model_outputs

        outputs = model_outputs(model, parts.forget, parts.retain, data.test, parts.subsets, data.info, device)
        outputs.save(Path(f"{path}.npz"))
        return outputs

    def observed_metrics(self, path: Path, data: PreparedImages, parts, config) -> dict:
        from ...evaluation import ModelOutputs, output_metrics

        outputs = ModelOutputs.load(Path(f"{path}.npz"), "grids")
        return output_metrics(outputs, parts.forget, parts.retain, data.test, parts.subsets, config)

    def forget_set_facts(self, original, data: PreparedImages, parts) -> dict:
        return {}

    def cell_facts(self, original, plan, observed, oracle_record, data: PreparedImages) -> dict:
        return {}

    def grid_metrics(self, columns) -> tuple[str, ...]:
        return ()

    def lira_sides(self, data: PreparedImages, parts, strategy: str, plan, ctx, train_dir: Path, oracle_cache,
                   unlearn_cache):
        from ...experiments.forgetting_quality import image_sides

        original = self.load_model(Path(train_dir) / "model.pt", "train")[0]
        return image_sides(original, parts, data.test, strategy, plan, ctx, oracle_cache, unlearn_cache)

    def claims(self, results, params, metrics_dir: Path):
        """Each finding of docs/methods.md §7 on the image grids; the proxies' cost from the proxy study."""
        from ...config import from_params
        from ...evaluation.claims import ClaimsConfig, claims_markdown, evaluate_claims
        from ...io import load_json

        config = from_params(ClaimsConfig, params["claims"], "claims")
        study = load_json(Path(metrics_dir) / "proxy_study.json", "proxy_study")
        proxies = tuple(params["rum_compare"].get("group_scores") or ())
        cost = {name: float(study[name]["times_cheaper_than_exact"]) for name in proxies if name in study}
        exact_score = (params["ablations"].get("group_scores") or ["exact_prob"])[0]
        table = evaluate_claims(results, cost, config, rum_scores=proxies, exact_score=exact_score)
        return table, claims_markdown(table, config)

    def figures(self, data: PreparedImages, results: Path, memorize: Path, out: Path) -> list[Path]:
        """memorized_examples.png: per class, the most and least memorized training images, planted noise in red;
        evaluation.png: FA/RA/TA/MIA of the original, unlearned and oracle models; rum_compare_tow.png: ToW by
        variant of the rum_compare grid; forgetting_quality_epsilon.png: the per-example ε of forgetting
        quality."""
        from ...evaluation.figures import (accuracy_bars, epsilon_histogram, memorized_examples, save,
                                           tow_by_variant)
        from ...labels import class_names
        from ...memorization.ranking import ranked_examples

        train, info = data.train, data.info
        ranked = ranked_examples(load_table(Path(memorize) / "scores.parquet", "memorize"), train.example_ids,
                                 train.labels, load_table(data.folder / PLANTED, "prepare"))
        position = {int(i): row for row, i in enumerate(train.example_ids.numpy())}
        ranked["position"] = ranked["example_id"].map(position)
        names = class_names(info)
        summary = load_table(Path(results) / "grids/summary.csv", "grids_report")
        return [
            save(memorized_examples(np.asarray(train.images), ranked, names), out / "memorized_examples.png"),
            save(accuracy_bars(load_table(Path(results) / "evaluation.csv", "evaluate")), out / "evaluation.png"),
            save(tow_by_variant(summary, "rum_compare"), out / "rum_compare_tow.png"),
            save(epsilon_histogram(load_table(Path(results) / "forgetting_quality.csv", "forgetting_quality")),
                 out / "forgetting_quality_epsilon.png"),
        ]

    def dataset_view(self, split, data: PreparedImages):
        return split  # an ImageSplit has example_ids and labels

    def model_card(self, info):
        return None  # tracking.py's image card: the input shape, normalization and class names of ``info``

    def registered_model(self, name: str, weights, info, recipe):
        from ...models import build_model

        model = build_model(name, info.in_channels, info.num_classes, info.image_size, seed=0)
        model.load_state_dict(weights)
        # the recipe's memory layout, which unlearning gives it anyway (rum.run_strategy): the forward passes before
        # it (scores) and the gates' on the starting model run in it ~1.4x faster on a CPU
        return model.to(memory_format=recipe.memory_format)

    def final_model_scores(self, model, data: PreparedImages, proxy: str, device) -> pd.Series:
        """``proxy`` (final confidence/loss/margin, holdout retraining: docs/methods.md §2) of ``model``, the
        validation split (else the test split) as held-out data."""
        from ...memorization.proxies.base import ProxyConfig, ProxyInputs
        from ...memorization.proxies.compute import compute_proxies

        heldout = data.validation if data.validation is not None else data.test
        table, _ = compute_proxies([proxy], ProxyInputs(data.train, heldout, data.info, model, device,
                                                        ProxyConfig(names=(proxy,))))
        return table.set_index("example_id")[proxy]

    def request_gates(self, start, candidate, forget, retain, data: PreparedImages, device, config, exact):
        """requests/gates.py ``verify``: the membership audit on p_y, test accuracy, F's accuracy against the
        reference's (held-out examples matched by the exact scores' out-of-subset accuracy, else by class)."""
        from ...requests.gates import out_of_subset, verify
        from ..base import RequestCheck

        heldout = data.validation if data.validation is not None else data.test
        gates, figures = verify(start, candidate, forget, retain, heldout, data.test, data.info, device, config,
                                out_of_subset(exact, forget.example_ids.numpy()))
        return RequestCheck(gates, figures)


MODALITY = ImageModality()
