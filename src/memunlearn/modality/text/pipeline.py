"""The text modality's behaviour (modality/base.py ``Modality``): a corpus cut into fixed-length sequences with
planted canaries (data/text_prepare.py), a language model trained with next-token cross-entropy (modality/text/lm.py).

The original model records learning events (per-sequence token statistics, TokenEventRecorder; per-epoch loss
and next-token accuracy, SequenceEventRecorder) from the training forward passes and, per
``train_records.first_epoch_grads``, each sequence's first-epoch gradient (modality/text/lm_grads.py: the token
embedding stored sparsely). A split's "labels" are its sequences' canary copy counts (0 for corpus text), so the
partition's class histogram reads as canaries by copies and the ``canaries`` kind picks them. Each method imports
what it runs, so a stage's DVC deps are the code of the methods it calls (tests/test_stage_deps.py
``pipeline_names``).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ...data.prepare import VALIDATION_FILE
from ...io import atomic_write, load_json, load_table, save_json, save_table
from ...tracking import ModelCard
from ..base import NO_RECORDS, GridOriginal
from .common import CANARIES, META, TOKENIZER, PreparedRun, load_prepared, logged, meta_json

TEXT = "text"
FIRST_EPOCH_GRADS = "first_epoch_grads.pt"  # in the train stage's folder

# What a text claim's interval over seeds spans: each seed's own original (its init, data order and first-epoch
# gradients) and the ascent from it; the canaries, their exposure references and the memorization scores are shared
TEXT_COVERS = "original, unlearning"


class TextModality:
    name = TEXT

    def prepare(self, config, raw: Path, out: Path) -> tuple[dict, list[Path]]:
        from ...data.owner_ids import save_owner_ids
        from ...data.text import save_text_split
        from ...data.text_prepare import prepare_text

        text = config.text_config()
        start = time.perf_counter()
        data = prepare_text(text)
        seconds = time.perf_counter() - start
        for split, name in ((data.train, "train.npz"), (data.validation, VALIDATION_FILE), (data.test, "test.npz")):
            save_text_split(split, out / name)
        atomic_write(out / TOKENIZER, lambda f: f.write(data.tokenizer_json.encode()))
        save_table(data.canaries, out / CANARIES)
        save_owner_ids(data.owner_ids, out)
        save_json(meta_json(data.info, text.canary_template, text.canary_digits), out / META)
        pad = data.info.pad_id
        return {
            "n_train": len(data.train), "n_validation": len(data.validation), "n_test": len(data.test),
            "n_canary_copies": len(data.canaries), "n_canaries": int(data.canaries["canary"].nunique()),
            "train_tokens": int((data.train.tokens != pad).sum()), "vocab_size": data.info.vocab_size,
            "seq_len": data.info.seq_len, "n_cut_records": data.n_cut, "seconds": seconds,
        }, [out / META, out / CANARIES]

    def load(self, prepared: Path) -> PreparedRun:
        return load_prepared(prepared)

    def train_original(self, data: PreparedRun, recipe, records, device, out: Path, on_row=None):
        from ...models import build_lm
        from ...seeding import derive_seed, generator
        from .lm import LMTrainConfig, SequenceEventRecorder, TokenEventRecorder, fit_lm
        from .lm_grads import LMFirstEpochGradRecorder, save_lm_grads

        info = data.info
        # the seeds of modality/text/canaries.py's train_lm (the benchmark's and tests' original model)
        model = build_lm(recipe.model, info.vocab_size, info.seq_len, seed=derive_seed(recipe.seed, "lm_init"))
        events = TokenEventRecorder(data.train.example_ids, info.pad_id)
        curves = SequenceEventRecorder(data.train.example_ids, recipe.epochs)
        first_epoch = (LMFirstEpochGradRecorder(model, data.train.example_ids, info.pad_id,
                                                records.first_epoch_grads)
                       if records.first_epoch_grads else None)
        heldout = data.validation if data.validation is not None else data.test

        def end_of_epoch(row):
            row["validation_ppl"] = perplexity_and_accuracy(model, heldout, info.pad_id)[0]
            if on_row is not None:
                on_row(row)

        start = time.perf_counter()
        history = fit_lm(model, data.train, LMTrainConfig.of(recipe), info.pad_id, generator(recipe.seed, "lm_order"),
                         on_step=first_epoch, events=curves, on_batch=events, device=device, on_row=end_of_epoch)
        seconds = time.perf_counter() - start
        save_table(events.to_frame(), out / "learning_events.parquet")
        save_table(curves.to_frame(), out / "learning_curves.parquet")
        grad_bytes = {}
        if first_epoch:
            grads = first_epoch.result()
            save_lm_grads(grads, out / FIRST_EPOCH_GRADS)
            grad_bytes = grads.nbytes()
        (train_ppl, train_acc), (test_ppl, test_acc) = (perplexity_and_accuracy(model, split, info.pad_id)
                                                        for split in (data.train, data.test))
        metrics = {
            "train_acc": train_acc, "test_acc": test_acc,  # next-token accuracy
            "train_ppl": train_ppl, "test_ppl": test_ppl,
            "validation_ppl": history[-1]["validation_ppl"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": seconds,  # recording included
            "learning_event_seconds": events.seconds,
            "curvature_seconds": 0.0, "curvature_rademacher_seconds": 0.0,
            "first_epoch_grad_seconds": first_epoch.seconds if first_epoch else 0.0,
            "first_epoch_grad_bytes": grad_bytes,
            "examples_processed": len(data.train) * recipe.epochs,
            "device": str(device),
        }
        return model, metrics, history, []

    def load_original(self, data: PreparedRun, recipe, device, root: Path, registry_weights):
        """The original trained elsewhere (``train.init``): a Hugging Face directory (modality/text/pretrained.py)
        or a registered model's weights in ``train.model``; its perplexity and next-token accuracy, no training
        records (``NO_RECORDS``)."""
        from ...sources import init_path, is_registry_uri
        from .pretrained import load_pretrained_lm

        start = time.perf_counter()
        if is_registry_uri(recipe.init):
            from ...models import build_lm
            from ...models.init import loaded as with_weights

            info = data.info
            model = with_weights(build_lm(recipe.model, info.vocab_size, info.seq_len, seed=0),
                                 registry_weights(recipe.init), recipe.init, recipe.model,
                                 f"a vocabulary of {info.vocab_size} tokens, {info.seq_len}-token sequences")
            loaded = f"{recipe.init} (registered MLflow model)"
        else:
            model, loaded = load_pretrained_lm(recipe.init, init_path(recipe.init, root), data.info)
        model.to(device).eval()
        (train_ppl, train_acc), (test_ppl, test_acc) = (perplexity_and_accuracy(model, split, data.info.pad_id)
                                                        for split in (data.train, data.test))
        return model, {"init": loaded, "seconds": time.perf_counter() - start, "train_acc": train_acc,
                       "test_acc": test_acc, "train_ppl": train_ppl, "test_ppl": test_ppl,
                       "parameters": sum(p.numel() for p in model.parameters()), **NO_RECORDS,
                       "device": str(device)}

    def save_model(self, model, name: str, info, path: Path) -> None:
        from .lm import save_lm_checkpoint

        save_lm_checkpoint(model, name, info, path)

    def load_model(self, path: Path, stage: str):
        from .lm import load_lm_checkpoint

        model, name, _ = load_lm_checkpoint(path, stage)
        return model, name

    def cached_oracle(self, retain, info, recipe, device, seed: int, cache: Path | None, on_row=None):
        """cache.py's ``cached_oracle`` (the text grids' and forgetting quality's too; it trains on
        ``recipe.device``, which ``device`` resolves)."""
        from .cache import cached_oracle

        model, record, cached = cached_oracle(cache, retain, info, recipe, seed, on_row)
        return model, float(record["seconds"]), cached

    def unlearn_context(self, data: PreparedRun, recipe, device, seed: int, train_dir: Path):
        from .lm_grads import load_lm_grads
        from ...unlearning import UnlearnContext

        grads_file = Path(train_dir) / FIRST_EPOCH_GRADS
        grads = load_lm_grads(grads_file) if grads_file.exists() else None
        return UnlearnContext(data.info, recipe, device, seed, first_epoch_grads=grads, heldout=data.validation)

    def score_sources(self, data: PreparedRun, exact, proxies, original: Path, device):
        from ...partition import ScoreSources

        # no embeddings: no entanglement kinds for text; the canary copies are its planted examples
        return ScoreSources(exact, proxies, data.labels(), planted=np.asarray(data.planted, dtype=np.int64))

    def describe_forget_set(self, config, forget, sources, data: PreparedRun) -> dict:
        from ...partition import describe_forget_set

        metrics = describe_forget_set(forget, sources, data.planted)
        metrics["canaries_in_forget"] = metrics["planted_noise_in_forget"]
        metrics["canary_copies"] = len(data.planted)
        return metrics

    def memorize(self, data: PreparedRun, recipe, config, device, out: Path, plots: Path, subset_models):
        """Per-sequence exact memorization from K leave-group-out language models (modality/text/memorization.py; a
        canary's copies are one group). The canaries play the image path's planted label noise in the metrics
        (``planted_noise_auroc``: how well the scores single out every canary copy). No subset-model store (the K
        models are trained each run, here: ``subset_models`` unused)."""
        from scipy.stats import spearmanr
        from tqdm import tqdm

        from ...memorization.agreement import planted_auroc
        from .memorization import canary_groups, lm_scores, train_lm_subset_models
        from .lm import LMTrainConfig

        groups = canary_groups(data.train, data.canaries)
        start = time.perf_counter()
        progress = tqdm(total=config.num_models, desc="subset models", unit="model")  # ETA from finished models
        runs = train_lm_subset_models(data.train, groups, LMTrainConfig.of(recipe), data.info.vocab_size,
                                      data.info.pad_id, config.num_models, config.subset_fraction, config.seed,
                                      device, on_model=lambda k: progress.update())
        progress.close()
        seconds = time.perf_counter() - start
        ids = data.train.example_ids.numpy()
        scores = lm_scores(runs, ids, groups)
        half = config.num_models // 2
        halves = [lm_scores(runs, ids, groups, part) for part in (slice(0, half), slice(half, None))]

        def split_half_spearman(score: str) -> float | None:  # as the image path's memorization/convergence.py
            a, b = (h[score] for h in halves)
            both = a.notna() & b.notna()
            return float(spearmanr(a[both], b[both]).statistic) if both.sum() > 2 else None

        by_id = scores.set_index("example_id")
        copies = data.labels()
        rank = by_id["mem"].rank(ascending=False)
        artifacts = plot_by_copies(by_id, copies, plots)
        metrics = {
            "num_models": config.num_models, "num_models_auto": False, "models_trained": config.num_models,
            "models_reused": 0, "precision": "fp32",  # language models train in fp32 (no autocast path)
            "mean_mem": float(by_id["mem"].mean()), "missing_fraction": float(by_id["mem"].isna().mean()),
            "planted_noise_auroc": planted_auroc(by_id["mem"], data.canary_ids),  # here: the canaries
            "planted_noise_auroc_prob": planted_auroc(by_id["mem_prob"], data.canary_ids),
            "spearman_split_halves": split_half_spearman("mem"),
            "spearman_split_halves_prob": split_half_spearman("mem_prob"),
            "canary_median_mem": {str(c): float(by_id["mem"][copies == c].median())
                                  for c in sorted(set(copies)) if c},
            "canary_median_rank": {str(c): float(rank[copies == c].median()) for c in sorted(set(copies)) if c},
            "corpus_median_mem": float(by_id["mem"][copies == 0].median()),
            "seconds": seconds, "compute_seconds": runs.seconds,
            "examples_processed": int(runs.masks.sum()) * recipe.epochs,
            "models_per_hour": config.num_models / seconds * 3600,
            "runner": "local", "workers": 1,
        }
        return scores, metrics, artifacts

    def proxy_inputs(self, data: PreparedRun, config, train_dir: Path, device):
        """The learning-event proxies (the text modality's PROXIES), from the per-sequence token statistics the
        train stage recorded; their cost is the recording's."""
        from ...memorization.proxies import ProxyInputs
        from ..applies import PROXIES

        names = list(config.names) or list(PROXIES)
        events = Path(train_dir) / "learning_events.parquet"  # absent when train.init loaded the original
        return names, ProxyInputs(train=data.train, heldout=None, info=data.info, model=None, device=None,
                                  config=config,
                                  learning_events=load_table(events, "train") if events.exists() else None)

    def model_metrics(self, model, data: PreparedRun, parts, config, device) -> dict:
        return text_row(model, data, parts, config.seed)

    def grid_originals(self, data: PreparedRun, recipe, plans, train_dir: Path, cache, device):
        """Each seed's original (trained, or loaded from ``cache``: trained.py), recording the first-epoch
        gradients of every layer set the grid's first-epoch ascents read (ablation.py); with its metrics row on
        F = every canary copy."""
        from ...partition import apply_partition
        from ...unlearning import UnlearnContext
        from .ablation import ascent, recordings
        from .trained import cached_original

        layers = recordings(ascent(plan) for plan in plans.values())
        canaries = apply_partition(data.train, data.canaries[["example_id"]].assign(subset=""))
        originals: dict[int, GridOriginal] = {}

        def original_of(seed: int) -> GridOriginal:
            if seed not in originals:
                model, stores, record, cached = cached_original(cache, data, recipe, seed, layers)
                context = stored_context(UnlearnContext(data.info, recipe, device, seed, heldout=data.validation),
                                         stores)
                originals[seed] = GridOriginal(model, context, {
                    "row": text_row(model, data, canaries, seed), "seconds": record["seconds"], "cached": cached,
                    "record_layers": "+".join(layers.get("first_epoch", ())) + "".join(  # all_epochs after a ";"
                        f"; {source}: {'+'.join(names)}" for source, names in layers.items()
                        if source != "first_epoch")})
            return originals[seed]

        return original_of

    def observe(self, model, data: PreparedRun, parts, seed: int, device, path: Path) -> dict:
        """The model's metrics row (``<path>.json``): canary exposure needs the model, not stored outputs."""
        row = text_row(model, data, parts, seed)
        save_json(row, Path(f"{path}.json"))
        return row

    def observed_metrics(self, path: Path, data: PreparedRun, parts, config) -> dict:
        return load_json(Path(f"{path}.json"), "grids")

    def forget_set_facts(self, original: GridOriginal, data: PreparedRun, parts) -> dict:
        """The original's training seconds and metrics as ``original_*``, its token accuracy on this F."""
        from .evaluation import lm_metrics

        facts = original.facts
        return {"original_seconds": facts["seconds"], "original_cached": facts["cached"],
                "original_record_layers": facts["record_layers"],
                **{f"original_{k}": v for k, v in facts["row"].items() if not k.startswith("forget_")},
                "original_forget_acc": lm_metrics(original.model, parts.forget, data.info.pad_id)["token_acc"]}

    def cell_facts(self, original: GridOriginal, plan, observed, oracle_record, data: PreparedRun) -> dict:
        """The first-epoch gradient ascent paper's ablation facts (ablation.py), the original's exposures."""
        from .ablation import ablation_facts, ascent

        row = original.facts["row"]
        source, layers = ascent(plan) or (None, ())
        return {**ablation_facts(original.model, original.context.stored_grads(source), source, layers, observed, row,
                                 len(data.train)),
                **{f"original_{k}": v for k, v in row.items() if k.startswith("exposure_")},
                "original_validation_ppl": row["validation_ppl"],
                "original_forget_acc": oracle_record["original_forget_acc"]}

    def grid_metrics(self, columns) -> tuple[str, ...]:
        """Canary exposure (per copy count), validation perplexity and its change, gradients stored ahead."""
        from .evaluation import exposure_columns
        from .ablation import GRID_METRICS

        return (*GRID_METRICS, *exposure_columns(columns))

    def lira_sides(self, data: PreparedRun, parts, strategy: str, plan, ctx, train_dir: Path, oracle_cache,
                   unlearn_cache):
        return text_sides(data, parts, strategy, plan, ctx, oracle_cache, unlearn_cache)

    def claims(self, results, params, metrics_dir: Path):
        """The first-epoch gradient ascent paper's findings 1, 2 and 4 (modality/text/claims.py) on the ``ablations`` grid's first_epoch_ga
        cells, one per (gradient source, layer set) and seed: each cell's exposure of the most-copied canaries
        after the ascent, its validation perplexity change and its stored gradient bytes, the seed's original
        model's exposure the reference. In the image run's shape (claim, finding, comparison, effect, ci_low,
        ci_high, n_seeds, verdict)."""
        from .claims import ablation_rows, first_epoch_ga_claims, text_claims_markdown

        rows, original = ablation_rows(results)
        found = first_epoch_ga_claims(rows, original)
        table = found.rename(columns={"effect_means": "comparison", "n": "n_seeds"})[
            ["claim", "finding", "comparison", "effect", "ci_low", "ci_high", "n_seeds", "verdict"]]
        table["covers"] = TEXT_COVERS
        table.loc[table["claim"] == "embedding_halves_space", "covers"] = "an exact byte count (no randomness)"
        return table, text_claims_markdown(table, rows)

    def figures(self, data: PreparedRun, results: Path, memorize: Path, out: Path) -> list[Path]:
        """memorization_by_copies.png: the exact score ``mem_prob`` of each training sequence by its canary copy
        count (0 = corpus text): repeated canaries should stand out; evaluation.png: F/R/test next-token accuracy
        and MIA of the original, unlearned and oracle models; exposure.png: canary exposure per copy count of
        those three models; first_epoch_ga_ablations.png: the ``ablations`` grid's variants (gradient source x layer set):
        exposure of the most repeated canaries after unlearning, validation perplexity change, gradients stored
        ahead, seconds; rum_compare_tow.png, forgetting_quality_epsilon.png: as on images."""
        from ...evaluation.figures import (accuracy_bars, epsilon_histogram, exposure_bars, save, score_by_group,
                                           tow_by_variant, variant_panels)
        from .evaluation import exposure_columns

        results = Path(results)
        scores = load_table(Path(memorize) / "scores.parquet", "memorize").set_index("example_id")["mem_prob"]
        evaluation = load_table(results / "evaluation.csv", "evaluate")
        summary = load_table(results / "grids/summary.csv", "grids_report")
        top = exposure_columns(summary.columns, "_mean")[-1:]  # the most copied canaries' exposure, if any
        ablations = {**{c.removesuffix("_mean"): f"exposure of {c.removesuffix('_mean').removeprefix('exposure_')} "
                                                 "canaries (bits)" for c in top},
                     "val_ppl_change": "validation perplexity change", "stored_mib": "stored ahead (MiB)",
                     "seconds": "seconds"}
        return [
            save(score_by_group(scores, data.labels(), "canary copies (0 = corpus text)", "mem_prob"),
                 out / "memorization_by_copies.png"),
            save(accuracy_bars(evaluation), out / "evaluation.png"),
            save(exposure_bars(evaluation, exposure_columns(evaluation.columns)), out / "exposure.png"),
            save(variant_panels(summary, "ablations", ablations), out / "first_epoch_ga_ablations.png"),
            save(tow_by_variant(summary, "rum_compare"), out / "rum_compare_tow.png"),
            save(epsilon_histogram(load_table(results / "forgetting_quality.csv", "forgetting_quality")),
                 out / "forgetting_quality_epsilon.png"),
        ]

    def dataset_view(self, split, data: PreparedRun):
        return logged(split, data.labels())

    def model_card(self, info) -> ModelCard:
        return ModelCard(np.full((2, info.seq_len), info.pad_id, dtype=np.int64), {  # (B, T) token ids
            "dataset": info.name, "input_shape": [info.seq_len], "vocab_size": info.vocab_size,
            "pad_id": info.pad_id, "eos_id": info.eos_id,
            "input_normalization": "token ids of the byte-level BPE in data/prepared/tokenizer.json",
        })

    def registered_model(self, name: str, weights, info, recipe):
        from ...models import build_lm

        model = build_lm(name, info.vocab_size, info.seq_len, seed=0)
        model.load_state_dict(weights)
        return model

    def final_model_scores(self, model, data: PreparedRun, proxy: str, device):
        """A sequence's final confidence (geometric-mean token probability) or loss (requests.py)."""
        from .requests import sequence_proxy

        return sequence_proxy(model, data.train, data.info.pad_id, proxy)

    def request_gates(self, start, candidate, forget, retain, data: PreparedRun, device, config, exact):
        """The membership audit on −loss, validation perplexity, F's loss against the reference's; the request's
        canaries' exposure before and after (requests.py)."""
        from .requests import request_gates

        return request_gates(start, candidate, forget, retain, data, device, config, exact)


def text_row(model, data: PreparedRun, parts, seed: int) -> dict:
    """metrics.py ``model_row`` with F's canaries (``seed``: the MIA's)."""
    from ...data.corpus import load_tokenizer
    from .metrics import model_row

    forgotten = data.canaries[data.canaries["example_id"].isin(parts.forget.example_ids.numpy())]
    return model_row(model, data, parts, load_tokenizer(data.tokenizer_json), forgotten, seed)


def perplexity_and_accuracy(model, split, pad_id: int) -> tuple[float, float]:
    """Token-weighted perplexity and next-token accuracy (modality/text/evaluation.py's lm_metrics, without importing the
    evaluation package into the train stage's deps)."""
    from .lm import score_sequences

    s = score_sequences(model, split, pad_id)
    tokens = max(float(s["tokens"].sum()), 1.0)
    return math.exp(float(s["nll"].sum()) / tokens), float(s["correct"].sum()) / tokens


def text_sides(data: PreparedRun, parts, strategy: str, plan, ctx, oracle_cache=None, unlearn_cache=None):
    """A language model's copies: the original of seed k (recording the layers ``plan``'s first-epoch ascent
    reads) unlearned with seed k, and models retrained on R; observed on F as sequence confidences.

    A sequence's confidence is the logit-scaled geometric-mean token probability ``log p − log(1 − p)``,
    p = exp(−mean next-token NLL) (evaluation/lira.py ``logit_scaled_sequence_confidence``); accuracies are
    next-token accuracies. Unlearned copy k unlearns an original trained with seed k (the text grids' seed), not
    one shared original: first-epoch ascent draws nothing, so copies of one original would be one model and the
    unlearned sample a constant. The originals and the retrained copies go through the text model cache
    (cache.py), the unlearning runs through the unlearning cache, so a grid's seed-k original, oracle or cell
    with the same data, recipe and recorded layers is loaded, not trained again."""
    import copy

    from ...evaluation.lira import logit_scaled_sequence_confidence
    from .evaluation import lm_metrics, metrics_of
    from ...experiments.forgetting_quality import Sides
    from .lm import score_sequences
    from ...unlearning import UnlearnContext
    from ...unlearning.cache import cached_strategy
    from .cache import cached_oracle
    from .ablation import ascent, recordings
    from .trained import cached_original

    info, recipe, pad = data.info, ctx.recipe, data.info.pad_id
    layers = recordings([ascent(plan)])

    def unlearned(c):
        original, stores, _, _ = cached_original(oracle_cache, data, recipe, c.seed, layers)
        c = stored_context(UnlearnContext(info, recipe, c.device, c.seed, heldout=data.validation,
                                          oracle_recipe=ctx.oracle_recipe), stores)
        model = copy.deepcopy(original)
        model, _, seconds, _ = cached_strategy(strategy, model, parts.subsets, parts.retain, plan, c, unlearn_cache)
        return model, seconds

    def retrained(c):
        model, record, _ = cached_oracle(oracle_cache, parts.retain, info, ctx.retrain_recipe, c.seed)
        return model, record["seconds"]

    def observe(model):
        forget = score_sequences(model, parts.forget, pad)  # F once: its confidences and its accuracy
        accs = {"forget_acc": metrics_of(forget)["token_acc"],
                **{f"{name}_acc": lm_metrics(model, split, pad)["token_acc"]
                   for name, split in (("retain", parts.retain), ("test", data.test))}}
        return logit_scaled_sequence_confidence(forget["loss"].to_numpy()), accs

    return Sides(unlearned, retrained, observe)


def stored_context(ctx, stores):
    """``ctx`` with an original's recorded gradient stores (trained.py ``cached_original``: by source)."""
    import dataclasses

    return dataclasses.replace(ctx, first_epoch_grads=stores.get("first_epoch"),
                               all_epochs_grads=stores.get("all_epochs"))


def plot_by_copies(by_id, copies, out) -> list:
    """mem (next-token accuracy, in − out) of corpus sequences and of canary copies by copy count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    groups = sorted(set(copies))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.boxplot([by_id["mem"][copies == c].dropna().to_numpy() for c in groups])
    ax.set_xticks(range(1, len(groups) + 1), ["corpus" if c == 0 else f"canary x{c}" for c in groups])
    ax.set_ylabel("mem (token accuracy in − out)")
    fig.tight_layout()
    path = out / "mem_by_copies.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


MODALITY = TextModality()
