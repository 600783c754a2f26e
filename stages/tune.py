"""Stage `tune`: each arm (method, strategy) of the `tuned` grid searched with Optuna before the claims compare
them (src/memunlearn/experiments/tune.py).

Every arm's study lives in data/tune/study.db (SQLite, a persistent DVC output: a rerun resumes it and computes
only the trials it lacks; a study is named by what it searches, so a changed space, forget set, original or
code starts a new one). Each trial unlearns on the tuning seeds (`tune.seeds`: their own forget sets and
oracles, disjoint from the tuned grid's held-out seeds) and scores the mean ToW against the retrain oracle.
Writes data/tune/best.json (per arm: the tuned values, their ToW, the untuned values' ToW) for the `grids`
stage's tuned cells, and metrics/tune.json (trials, best ToW, seconds). The text modality tunes nothing: it
writes an empty best.json.
"""
from _common import (MEMORIZE_DIR, METRICS_DIR, ORACLE_CACHE, PREPARED, PROXIES_DIR, TRAIN_DIR, TUNE_DIR, device,
                     flatten, load_params, stage, track)

import time

from memunlearn.config import from_params
from memunlearn.experiments.tune import TuneConfig, run_tune
from memunlearn.forgotten import without_forgotten
from memunlearn.grid import TUNED, TUNED_MODALITIES, GridConfig
from memunlearn.io import load_table, save_json
from memunlearn.modality import load_modality
from memunlearn.tracking import StageRecord

STUDY = TUNE_DIR / "study.db"


@stage
def main() -> None:
    params = load_params("modality", "train", "oracle", "methods", "tune", TUNED)
    config = from_params(TuneConfig, params["tune"], "tune")
    grid = from_params(GridConfig, params[TUNED], TUNED)
    grid.check_methods(params["methods"])
    config.check(params["methods"], grid.seeds)
    start, cpu, arms, overlap = time.perf_counter(), time.process_time(), [], None
    TUNE_DIR.mkdir(parents=True, exist_ok=True)
    STUDY.touch()  # a declared output also where nothing is tuned (text): an empty file is an empty SQLite database
    if params["modality"] in TUNED_MODALITIES:
        modality = load_modality(params["modality"], PREPARED)
        data = without_forgotten(modality.load(PREPARED))
        dev = device(config.device)
        sources = modality.score_sources(data, load_table(MEMORIZE_DIR / "scores.parquet", "memorize"),
                                         load_table(PROXIES_DIR / "proxies.parquet", "proxies"),
                                         TRAIN_DIR / "model.pt", dev)
        arms, overlap = run_tune(config, grid, params, modality, data, sources, dev, TRAIN_DIR, ORACLE_CACHE,
                                 f"sqlite:///{STUDY}")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu  # cpu: all threads, any load
    save_json({"seeds": list(config.seeds), "held_out_overlap": overlap,
               "arms": {f"{a.method}/{a.strategy}": a.record() for a in arms}}, TUNE_DIR / "best.json")
    metrics = {"seconds": seconds, "cpu_seconds": cpu_seconds, "arms": len(arms),
               **({"held_out_overlap": overlap} if overlap is not None else {}),  # none where nothing is tuned
               "trials": sum(a.trials for a in arms),
               "new_trials": sum(a.new_trials for a in arms),
               **{f"{a.method}/{a.strategy}": {"tow": a.tow, "default_tow": a.default_tow, "trials": a.trials,
                                               "seconds": a.seconds} for a in arms}}
    save_json(metrics, METRICS_DIR / "tune.json")
    track(StageRecord("tune", flatten({"tune": params["tune"], TUNED: params[TUNED]}), flatten(metrics),
                      artifacts=[TUNE_DIR / "best.json"]))


if __name__ == "__main__":
    main()
