"""Benchmark: first-epoch gradient ascent on text. Canary exposure before/after first-epoch GA vs the oracle, and the ablations.

Trains a small GPT-2 on the pydoc corpus with planted canaries (data/text_prepare.py),
records every sequence's first-epoch gradient (embedding sparse, the rest dense),
retrains an oracle without the canaries, then runs lm_first_epoch_ga with F = every
canary copy for first- vs last-epoch gradients x layer sets (modality/text/canaries.py),
and optionally the leave-group-out memorization scores (modality/text/memorization.py).

    python benchmarks/text_first_epoch_ga.py [--model gpt2_micro] [--max-sequences 480] [--seq-len 32]
        [--epochs 8] [--target accuracy] [--memorization 6] [--seeds 0 1 2] [--json FILE]

With several --seeds (training seed: init and data order; corpus, canaries and splits fixed) the ablation
tables are printed as mean ± std over seeds, and per seed in the JSON.
"""
from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch

from memunlearn.data.text_prepare import TextDataConfig, prepare_text
from memunlearn.modality.text.canaries import canary_study
from memunlearn.modality.text.claims import first_epoch_ga_claims
from memunlearn.modality.text.memorization import canary_groups, lm_memorization
from memunlearn.modality.text.lm import LMTrainConfig
from memunlearn.modality.text.lm_first_epoch_ga import LMFirstEpochGAConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2_micro")
    ap.add_argument("--max-sequences", type=int, default=480)
    ap.add_argument("--seq-len", type=int, default=32)
    ap.add_argument("--vocab-size", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--target", default="accuracy", choices=["accuracy", "loss"])
    ap.add_argument("--memorization", type=int, default=0, help="K leave-group-out models (0 = skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--claims-from", help="print the claims of an earlier --json run and stop")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.claims_from:
        with open(args.claims_from) as f:
            print(claims_table(json.load(f)["seeds"]).round(3).to_markdown(index=False))
        return
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)
    data = TextDataConfig(vocab_size=args.vocab_size, seq_len=args.seq_len, max_sequences=args.max_sequences,
                          canary_copies=(1, 16), canaries_per_count=3)
    start = time.perf_counter()
    prepared = prepare_text(data)
    prep_s = time.perf_counter() - start
    recipe = LMTrainConfig(model=args.model, epochs=args.epochs)
    results = {seed: canary_study(prepared, data, recipe, LMFirstEpochGAConfig(target=args.target), seed=seed)
               for seed in args.seeds}
    if len(args.seeds) > 1:
        seeded_tables(results)
    result = results[args.seeds[0]]
    model = result["original"].model
    figures = {
        "corpus": prepared.info.name, "corpus_sha256": prepared.info.corpus_sha256[:12],
        "train_sequences": len(prepared.train), "validation_sequences": len(prepared.validation),
        "test_sequences": len(prepared.test), "canary_copies": len(prepared.canaries),
        "train_tokens": int((prepared.train.tokens != prepared.info.pad_id).sum()),
        "parameters": sum(p.numel() for p in model.parameters()), "prepare_s": prep_s,
        "train_s": result["original"].seconds,  # includes recording every layer's first-epoch gradients
        "epoch_s": [round(row["seconds"], 1) for row in result["original"].history],
        "oracle_train_s": result["oracle"].seconds,
        "val_ppl": result["val_ppl"], "forget_loss": result["forget_loss"], "mia": result["mia"],
        "grad_bytes": result["grads"].nbytes(),
    }
    print(json.dumps(figures, indent=1, default=str))
    print(result["exposure"].round(2).to_markdown(index=False))
    print(result["ablation"].round(3).to_markdown(index=False))
    out = {"figures": figures, "exposure": result["exposure"].to_dict("records"),
           "ablation": result["ablation"].to_dict("records"),
           "seeds": {seed: {"ablation": r["ablation"].to_dict("records"), "val_ppl": r["val_ppl"],
                            "forget_acc": r["forget_acc"], "train_s": r["original"].seconds,
                            "exposure": r["exposure"].to_dict("records")} for seed, r in results.items()}}
    if args.memorization:
        groups = canary_groups(prepared.train, prepared.canaries)
        mem = lm_memorization(prepared.train, groups, LMTrainConfig(model=args.model, epochs=args.epochs),
                              prepared.info.vocab_size, prepared.info.pad_id, args.memorization)
        copies = dict(zip(prepared.canaries["example_id"], prepared.canaries["copies"]))
        mem["copies"] = mem["example_id"].map(copies).fillna(0).astype(int)
        mem["rank_acc"] = mem["mem_acc"].rank(ascending=False)
        summary = mem.groupby("copies")[["mem", "mem_acc", "rank_acc"]].median()
        print(f"memorization: {args.memorization} models, {mem.attrs['seconds']:.0f} s")
        print(summary.round(3).to_markdown())
        out["memorization"] = summary.reset_index().to_dict("records")
    if len(args.seeds) > 1:
        claims = claims_table(json.loads(json.dumps(out["seeds"], default=str)))
        print(claims.round(3).to_markdown(index=False))
        out["claims"] = claims.to_dict("records")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


def claims_table(seeds: dict) -> pd.DataFrame:
    """The first-epoch gradient ascent paper's findings 1, 2, 4 over the seeds of a run (modality/text/claims.py)."""
    rows = pd.concat([pd.DataFrame(s["ablation"]).assign(seed=int(k)) for k, s in seeds.items()])
    exposure = {}
    for k, s in seeds.items():
        table = pd.DataFrame(s["exposure"])
        exposure[int(k)] = table.loc[table["copies"] == table["copies"].max(), "original"].mean()
    return first_epoch_ga_claims(rows, pd.Series(exposure))


def seeded_tables(results: dict) -> None:
    """The paper's two ablations as mean ± std over seeds: gradient source (first vs last epoch) and layer set."""
    rows = pd.concat([r["ablation"].assign(seed=seed) for seed, r in results.items()])
    refs = pd.DataFrame([{"seed": seed, "original_exposure": r["exposure"]["original"].mean(),
                          "oracle_exposure": r["exposure"]["oracle"].mean(), **{f"{k}_forget_acc": v for k, v in
                                                                                r["forget_acc"].items()},
                          **{f"{k}_val_ppl": v for k, v in r["val_ppl"].items()}} for seed, r in results.items()])
    print(f"references over {len(results)} seeds (mean ± std):")
    print(refs.drop(columns="seed").agg(["mean", "std"]).round(3).to_markdown())
    columns = ["exposure_mean", "exposure_gap", "forget_acc", "forget_acc_gap", "val_ppl_change", "steps",
               "stored_mib", "record_seconds", "seconds"]
    grouped = rows.groupby(["source", "layers"], sort=False)[columns]
    mean, std = grouped.mean(), grouped.std()
    table = mean.round(3).astype(str) + " ± " + std.round(3).astype(str)
    table["reached"] = rows.groupby(["source", "layers"], sort=False)["reached"].sum().astype(str) + f"/{len(results)}"
    print(table.to_markdown())


if __name__ == "__main__":
    main()
