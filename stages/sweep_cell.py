"""Stage `<grid>_cell@<method>-<score>-<kind>-<strategy>-<seed>`: unlearn one sweep forget set.

Reads F and the oracle's record of its (score, kind, seed) from `<grid>_oracle`,
unlearns from the original model with the registered method and strategy
(docs/methods.md §4-5), and writes a small JSON (the unlearning wall seconds
beside the oracle's retraining seconds, steps, the forget set's facts) and the
unlearned model's class probabilities on F, R, T and the RUM subsets
(memunlearn.experiments.cell). `sweep_score` scores them against the oracle
(§6), so an evaluation setting never reruns a cell. The seed drives the
unlearning.
"""
from _common import (FIRST_EPOCH_GRADS, PREPARED, TRAIN_DIR, UNLEARN_CACHE, device, flatten, load_params, run_id, stage,
                     track)

import argparse
from pathlib import Path

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.experiments.cell import run_cell
from memunlearn.grid import GRIDS, KEYS
from memunlearn.io import load_json, load_table, save_json
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord, dataset_digest
from memunlearn.training import TrainConfig, load_checkpoint, save_checkpoint
from memunlearn.unlearning import UnlearnConfig
from memunlearn.unlearning.context import unlearn_context


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one cell of a sweep grid; dvc.yaml passes these")
    parser.add_argument("--grid", choices=GRIDS, default="sweep", help="the params section holding the grid")
    for name in ("method", "group-score", "kind", "strategy"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--oracle", type=Path, required=True, help="its forget set's sweep_oracle folder")
    parser.add_argument("--out", type=Path, required=True, help="the cell's JSON record")
    parser.add_argument("--outputs", type=Path, required=True, help="the unlearned model's outputs (.npz)")
    parser.add_argument("--model", type=Path, required=True, help="the unlearned model's checkpoint (.pt)")
    return parser.parse_args()


@stage
def main() -> None:
    args = arguments()
    params = load_params("train", "methods", args.grid)
    cell = {key: getattr(args, key) for key in KEYS}
    oracle_stage = f"{args.grid}_oracle@{args.group_score}-{args.kind}-{args.seed}"
    method_params = {args.method: params["methods"].get(args.method) or {}}
    dev_name = params[args.grid].get("device") or "auto"
    config = from_params(UnlearnConfig, {"method": args.method, "strategy": args.strategy, "seed": args.seed,
                                         "device": dev_name}, args.grid)
    recipe = from_params(TrainConfig, params["train"], "train")
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(args.oracle / "forget.csv", oracle_stage))
    test = load_split(PREPARED / "test.npz")
    model, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    oracle_record = load_json(args.oracle / "oracle.json", oracle_stage)
    ctx = unlearn_context(info, recipe, device(dev_name), config.seed, PREPARED, FIRST_EPOCH_GRADS)

    record, outputs = run_cell(cell, model, parts, test, config.plan(method_params), ctx, oracle_record,
                               UNLEARN_CACHE)
    outputs.save(args.outputs)
    save_checkpoint(model, recipe.model, info, args.model)  # run_cell unlearned `model` in place
    # sweep_report logs and registers this model into this run (one process for every cell's model)
    tracking = {"run_id": run_id(), "forget_digest": dataset_digest(parts.forget.example_ids, parts.forget.labels)}
    save_json({**record, **tracking}, args.out)
    used = {"train": params["train"], "methods": method_params, "cell": cell, args.grid: {"device": dev_name}}
    metrics = {k: v for k, v in record.items() if k not in KEYS}
    name = f"{args.grid}_cell@" + "-".join(str(record[k]) for k in KEYS[1:])
    track(StageRecord(name, flatten(used), flatten(metrics), artifacts=[args.out],
                      datasets={"F": parts.forget, "R": parts.retain, "T": test}))


if __name__ == "__main__":
    main()
