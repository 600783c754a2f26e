"""Stage `<grid>_cell@<method>-<score>-<kind>-<strategy>-<seed>`: unlearn one sweep forget set, score it.

Reads F and the oracle of its (score, kind, seed) from `<grid>_oracle`, unlearns
from the original model with the registered method and strategy (docs/methods.md
§4-5), and writes one small JSON: FA/RA/TA, per-subset forget accuracy, MIA,
ToW and ToW-MIA of the unlearned model and of the oracle (§6), and the
unlearning wall seconds beside the oracle's retraining seconds. The seed
drives the unlearning and the MIA's subsampling.
"""
from _common import PREPARED, TRAIN_DIR, Timer, device, flatten, load_params, stage, track, unlearn_context

import argparse
from pathlib import Path

from memunlearn.config import from_params
from memunlearn.data import load_info, load_split
from memunlearn.evaluation import EvaluateConfig, compare, model_metrics
from memunlearn.grid import GRIDS, KEYS
from memunlearn.io import load_json, load_table, save_json
from memunlearn.partition import apply_partition
from memunlearn.tracking import StageRecord
from memunlearn.training import TrainConfig, load_checkpoint
from memunlearn.unlearning import run_strategy
from memunlearn.unlearning import UnlearnConfig

FORGET_SET_FACTS = ("entanglement_score", "largest_class_share", "planted_noise_in_forget")  # from oracle.json


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one cell of a sweep grid; dvc.yaml passes these")
    parser.add_argument("--grid", choices=GRIDS, default="sweep", help="the params section holding the grid")
    for name in ("method", "group-score", "kind", "strategy"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--oracle", type=Path, required=True, help="its forget set's sweep_oracle folder")
    parser.add_argument("--out", type=Path, required=True, help="the cell's JSON record")
    return parser.parse_args()


@stage
def main() -> None:
    args = arguments()
    params = load_params("train", "evaluate", "methods", args.grid)
    oracle_stage = f"{args.grid}_oracle@{args.group_score}-{args.kind}-{args.seed}"
    method_params = {args.method: params["methods"].get(args.method) or {}}
    dev_name = params[args.grid].get("device") or "auto"
    config = from_params(UnlearnConfig, {"method": args.method, "strategy": args.strategy, "seed": args.seed,
                                         "device": dev_name}, args.grid)
    plan = config.plan(method_params)
    recipe = from_params(TrainConfig, params["train"], "train")
    eval_config = from_params(EvaluateConfig, {**params["evaluate"], "seed": args.seed}, "evaluate")
    info = load_info(PREPARED / "meta.json")
    parts = apply_partition(load_split(PREPARED / "train.npz"), load_table(args.oracle / "forget.csv", oracle_stage))
    test = load_split(PREPARED / "test.npz")
    model, _ = load_checkpoint(TRAIN_DIR / "model.pt", "train")
    oracle, _ = load_checkpoint(args.oracle / "model.pt", oracle_stage)
    oracle_record = load_json(args.oracle / "oracle.json", oracle_stage)
    dev = device(dev_name)

    with Timer() as timer:
        model, steps = run_strategy(config.strategy, model, parts.subsets, parts.retain, plan,
                                    unlearn_context(info, recipe, dev, config.seed))
    scored = {name: model_metrics(m, parts.forget, parts.retain, test, parts.subsets, info, eval_config, dev)
              for name, m in (("unlearned", model), ("oracle", oracle))}
    table = compare(scored, oracle_key="oracle").set_index("model")
    record = {
        "grid": args.grid, "method": args.method, "group_score": args.group_score, "kind": args.kind,
        "strategy": args.strategy, "seed": args.seed,
        "unlearned": table.loc["unlearned"].to_dict(), "oracle": table.loc["oracle"].to_dict(),
        "seconds": timer.seconds, "oracle_seconds": oracle_record["seconds"], "forget_size": len(parts.forget),
        "steps": len(steps), **{k: oracle_record.get(k) for k in FORGET_SET_FACTS},
    }
    save_json(record, args.out)
    used = {"train": params["train"], "evaluate": params["evaluate"], "methods": method_params,
            "cell": {k: record[k] for k in KEYS}, args.grid: {"device": dev_name}}
    metrics = {k: v for k, v in record.items() if k not in KEYS}
    track(StageRecord(f"{args.grid}_cell@" + "-".join(str(record[k]) for k in KEYS[1:]), flatten(used),
                      flatten(metrics), artifacts=[args.out]))


if __name__ == "__main__":
    main()
