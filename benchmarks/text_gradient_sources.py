"""Benchmark: finding 1 of first-epoch gradient ascent on the text preset, the grid's way, without DVC.

Per training seed: the original of params/text.yaml (modality/text/trained.py ``cached_original``, recording the
embedding's first-epoch and all-epochs gradients), then first_epoch_ga on F = every canary copy with
``gradients`` first_epoch, all_epochs and last_epoch (the registered method, as a grid cell runs it); the 16x
canaries' exposure after each, and modality/text/claims.py's finding-1 rows over the seeds. Prints the cost of
each recording (seconds inside the recorder, stored MiB) and the claims.

    python benchmarks/text_gradient_sources.py [--seeds 0 1 2] [--max-sequences 600] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import pandas as pd
import torch
import yaml

from memunlearn.config import from_params, with_preset
from memunlearn.data.corpus import load_tokenizer
from memunlearn.data.prepare import PrepareConfig
from memunlearn.data.text_prepare import prepare_text
from memunlearn.modality.text.canaries import train_lm
from memunlearn.modality.text.claims import first_epoch_ga_claims
from memunlearn.modality.text.evaluation import canary_exposures
from memunlearn.modality.text.lm import LMTrainConfig
from memunlearn.modality.text.pipeline import stored_context
from memunlearn.training.recipe import recipe_for
from memunlearn.unlearning import UnlearnContext
from memunlearn.unlearning.first_epoch_ga import FirstEpochGAConfig, first_epoch_ga

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("first_epoch", "all_epochs", "last_epoch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-sequences", type=int, default=0, help="0 = the preset's data.text.max_sequences")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = with_preset(yaml.safe_load((ROOT / "params.yaml").read_text()),
                         yaml.safe_load((ROOT / "params/text.yaml").read_text()))
    if args.max_sequences:
        params["data"]["text"]["max_sequences"] = args.max_sequences
    data_cfg = from_params(PrepareConfig, params["data"], "data").text_config()
    prepared = prepare_text(data_cfg)
    recipe = recipe_for(params, "original")
    block = params["methods"]["first_epoch_ga"]
    forget = prepared.train.select_ids(prepared.canaries["example_id"])
    retain = prepared.train.drop_ids(prepared.canaries["example_id"])
    tokenizer, top = load_tokenizer(prepared.tokenizer_json), max(data_cfg.canary_copies)
    rows, original_exposure, cost = [], {}, []
    for seed in args.seeds:
        trained, first = train_lm(prepared, LMTrainConfig.of(recipe), seed, recorder_layers=("embedding",),
                                  all_epochs_layers=("embedding",))
        stores = {"first_epoch": first, "all_epochs": trained.all_epochs_grads}
        cost.append({"seed": seed, "train_s": trained.seconds, **{f"{s}_record_s": v for s, v in
                                                                   trained.record_seconds.items()},
                     **{f"{s}_mib": g.nbytes()["embedding_sparse"] / 2 ** 20 for s, g in stores.items()}})

        def exposure(model):
            table = canary_exposures(model, tokenizer, prepared.canaries, data_cfg.canary_template,
                                     data_cfg.canary_digits)
            return float(table.loc[table["copies"] == top, "exposure"].mean())

        original_exposure[seed] = exposure(trained.model)
        ctx = stored_context(UnlearnContext(prepared.info, recipe, torch.device("cpu"), seed,
                                            heldout=prepared.validation), stores)
        for source in SOURCES:
            cfg = from_params(FirstEpochGAConfig, {**block, "gradients": source}, "methods.first_epoch_ga")
            start = time.perf_counter()
            model = first_epoch_ga(copy.deepcopy(trained.model), forget, retain, cfg, ctx)
            rows.append({"seed": seed, "source": source, "layers": "embedding", f"exposure_{top}x": exposure(model),
                         "val_ppl_change": 0.0, "stored_mib": 0.0, "ascent_s": time.perf_counter() - start})
        print(json.dumps({"cost": cost[-1], "rows": rows[-3:]}, default=float), flush=True)
    table = pd.DataFrame(rows)
    claims = first_epoch_ga_claims(table, pd.Series(original_exposure))
    claims = claims[claims["finding"] == 1]
    print(pd.DataFrame(cost).round(2).to_markdown(index=False))
    print(table.groupby("source")[[f"exposure_{top}x", "ascent_s"]].agg(["mean", "std"]).round(2).to_markdown())
    print("original exposure:", {k: round(v, 2) for k, v in original_exposure.items()})
    print(claims[["claim", "effect", "ci_low", "ci_high", "n", "verdict"]].round(2).to_markdown(index=False))
    if args.json:
        Path(args.json).write_text(json.dumps({"cost": cost, "rows": rows, "original": original_exposure,
                                               "claims": claims.to_dict("records")}, default=float, indent=1))


if __name__ == "__main__":
    main()
