"""Deletion requests end to end through the CLI on a tiny project (real MLflow registry in SQLite, real unlearning):
a request lands a tagged version and moves @production; the next starts from it and never trains on what was
forgotten; a failed gate and every bad input change nothing; the ledger names an edited or deleted entry;
`kill -9` at each durable step leaves the state before the request or one its rerun completes; a retrain trains
on D minus every forgotten id. The tests run in order on one project."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from memunlearn.cli import main
from memunlearn.data import load_split
from memunlearn.data.owner_ids import load_owner_ids
from memunlearn.requests import ledger
from memunlearn.tracking import ModelRecord, StageRecord, TrackingTarget, dataset_digest, record_stage, store_location
from memunlearn.training.oracle import cached_oracle

import requests_project

pytestmark = pytest.mark.e2e
MODEL = "memunlearn-original"
LENIENT = {"audit_margin": 0.5, "max_utility_drop": 1.0, "max_overforgetting": 1.0}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = requests_project.build(tmp_path_factory.mktemp("requests") / "project")
    train = load_split(root / "data/prepared/train.npz")
    ids = np.random.default_rng(7).permutation(train.example_ids.numpy())
    return root, train, ids


def client(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=store_location(root)[0])


def run(root: Path, capsys, *args: str) -> tuple[int, str, str]:
    """``memunlearn <args> --root root`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([*args, "--root", str(root)])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def write_ids(root: Path, name: str, ids) -> Path:
    path = root / name
    path.write_text("id\n" + "".join(f"{i}\n" for i in ids))
    return path


def state(root: Path) -> tuple:
    """What a request may change: the ledger's bytes, @production, the registered versions and their status."""
    path = root / "requests/ledger.jsonl"
    versions = {str(v.version): v.tags.get("status") for v in client(root).search_model_versions(f"name = '{MODEL}'")}
    return (path.read_bytes() if path.exists() else b"",
            str(client(root).get_model_version_by_alias(MODEL, "production").version), versions)


def tags(root: Path, version: str) -> dict:
    return dict(client(root).get_model_version(MODEL, version).tags)


def test_a_request_lands_a_tagged_version_moves_the_alias_and_writes_the_ledger(project, capsys):
    root, train, ids = project
    assert state(root)[1] == "1"  # the train stage's original, @production claimed
    path = write_ids(root, "r1.csv", [*ids[:12], ids[0]])  # one repeated id
    code, out, err = run(root, capsys, "forget", "--ids", str(path), "--request-id", "r1")
    assert code == 0, err
    assert "ACCEPTED" in out and out.count("1 duplicate entries dropped") == 1
    assert state(root)[1] == "2"
    version = tags(root, "2")
    assert version["parent_version"] == "1" and version["request_id"] == "r1" and version["ids_count"] == "12"
    assert version["ids_digest"] == ledger.read(root / "requests/ledger.jsonl")[0]["ids_digest"]
    assert {version[k] for k in ("method", "strategy", "scores", "status")} == {
        "neggrad_plus", "rum_f", "final_confidence", "accepted"}
    assert "git_commit" in version and version["data_digest"] == dataset_digest(train.example_ids, train.labels)
    report = (root / "requests/reports/r1.json").read_text()
    assert '"new_version": "2"' in report and '"membership_audit"' in report
    run_id = client(root).get_model_version(MODEL, "2").run_id
    assert {"r1.json", "r1.md"} <= {a.path for a in client(root).list_artifacts(run_id)}
    code, out, _ = run(root, capsys, "requests", "ls")
    assert code == 0 and "r1" in out and "1->2" in out and "12 ids forgotten" in out
    assert run(root, capsys, "requests", "verify")[0] == 0


def test_the_next_request_starts_from_the_last_version_and_never_trains_on_forgotten_ids(project, capsys):
    root, train, ids = project
    path = write_ids(root, "r2.txt", [*ids[8:12], *ids[12:20]])  # 4 forgotten by r1
    code, out, err = run(root, capsys, "forget", "--ids", str(path), "--request-id", "r2")
    assert code == 0, err
    entry = ledger.read(root / "requests/ledger.jsonl")[-1]
    assert entry["parent_version"] == "2" and entry["new_version"] == "3" and state(root)[1] == "3"
    assert sorted(entry["already_forgotten"]) == sorted(str(i) for i in ids[8:12]) and entry["ids_count"] == 8
    assert sorted(entry["owner_ids"]) == sorted(str(i) for i in ids[12:20])  # built-in data: str(example_id)
    import json
    report = json.loads((root / "requests/reports/r2.json").read_text())
    retain = train.drop_ids(ids[:20])  # D minus everything r1 and r2 forgot
    assert report["retain"]["pool_size"] == len(train) - 20  # drawn from here: 20 per forgotten id (8 here)
    assert report["retain"]["pool_digest"] == dataset_digest(retain.example_ids, retain.labels)
    assert report["retain"]["size"] == 160
    assert report["scores"]["computed"] is True  # version 2's scores: a new version


def test_a_failed_gate_tags_the_candidate_rejected_and_changes_nothing_else(project, capsys):
    root, _, ids = project
    before = state(root)
    requests_project.set_params(root, {"requests": {"audit_margin": 0.0}})  # only AUC == 0.5 exactly passes
    try:
        code, _, err = run(root, capsys, "forget", "--ids", str(write_ids(root, "r3.txt", ids[20:30])),
                           "--request-id", "r3")
    finally:
        requests_project.set_params(root, {"requests": LENIENT})
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: request r3 rejected: membership_audit failed")
    after = state(root)
    assert after[:2] == before[:2]  # ledger bytes and alias
    rejected = set(after[2]) - set(before[2])
    assert len(rejected) == 1 and after[2][rejected.pop()] == "rejected"
    assert all(after[2][v] == s for v, s in before[2].items())  # earlier versions as they were


def test_a_later_request_against_the_same_version_computes_no_scores(project, capsys):
    root, _, ids = project
    code, _, err = run(root, capsys, "forget", "--ids", str(write_ids(root, "r4.txt", ids[20:30])),
                       "--request-id", "r4")
    assert code == 0, err
    import json
    report = json.loads((root / "requests/reports/r4.json").read_text())
    assert report["parent_version"] == "3" and report["scores"]["computed"] is False  # r3 computed them


def _other_data_version(root: Path) -> str:
    """A version whose data fingerprint is not this project's."""
    from memunlearn.data import load_info
    from memunlearn.training import load_checkpoint

    model, _ = load_checkpoint(root / "data/train/model.pt", "train")
    uri, artifacts = store_location(root)
    record_stage(StageRecord("train", models={"m": ModelRecord(model, "original", load_info(
        root / "data/prepared/meta.json"), {"model": "small_cnn", "data_digest": "0123456789ab"})}),
        TrackingTarget(uri, artifacts))
    return str(max(int(v.version) for v in client(root).search_model_versions(f"name = '{MODEL}'")))


@pytest.mark.parametrize("case", ["unknown ids", "test ids", "validation ids", "empty file", "malformed file",
                                  "no such model", "other data", "unknown method"])
def test_bad_input_is_one_line_and_changes_nothing(project, capsys, case):
    root, train, ids = project
    prepared = root / "data/prepared"
    good = write_ids(root, "good.txt", ids[40:45])
    args = {"--ids": str(good), "--request-id": f"bad-{case.replace(' ', '-')}"}
    says = {"unknown ids": "2 unknown id(s) (999998, 999999)",
            "test ids": "belong to the test split", "validation ids": "belong to the validation split",
            "empty file": "empty; write one id per line", "malformed file": "not valid JSON",
            "no such model": "does not exist", "other data": "does not match data/prepared",
            "unknown method": "unknown unlearning method 'nope'"}[case]
    if case == "unknown ids":
        args["--ids"] = str(write_ids(root, "bad.txt", [*ids[40:42], 999998, 999999]))
    elif case in ("test ids", "validation ids"):
        split = load_split(prepared / ("test.npz" if case == "test ids" else "val.npz"))
        args["--ids"] = str(write_ids(root, "bad.txt", [ids[40], int(split.example_ids[0])]))
    elif case == "empty file":
        (root / "bad.txt").write_text("")
        args["--ids"] = str(root / "bad.txt")
    elif case == "malformed file":
        (root / "bad.json").write_text("[1, 2")
        args["--ids"] = str(root / "bad.json")
    elif case == "no such model":
        args["--model"] = f"models:/{MODEL}/999"
    elif case == "other data":
        args["--model"] = f"models:/{MODEL}/{_other_data_version(root)}"
    else:
        args["--method"] = "nope"
    before = state(root)
    code, out, err = run(root, capsys, "forget", *[x for kv in args.items() for x in kv])
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert says in err, err
    assert state(root) == before and not (root / f"requests/reports/{args['--request-id']}.json").exists()


def test_verify_names_an_edited_and_a_deleted_entry_and_requests_refuse_a_broken_chain(project, capsys):
    root, _, ids = project
    path = root / "requests/ledger.jsonl"
    original = path.read_text()
    lines = original.splitlines()
    try:
        path.write_text("\n".join([lines[0].replace('"ids_count": 12', '"ids_count": 11'), *lines[1:]]) + "\n")
        code, _, err = run(root, capsys, "requests", "verify")
        assert code == 1 and "entry 1 (request 'r1'): its hash does not match its content" in err
        code, _, err = run(root, capsys, "forget", "--ids", str(write_ids(root, "r5.txt", ids[50:55])),
                           "--request-id", "r5")
        assert code == 1 and "run `memunlearn requests verify` and restore the ledger" in err
        path.write_text("\n".join(lines[1:]) + "\n")  # r1's entry deleted
        code, _, err = run(root, capsys, "requests", "verify")
        assert code == 1 and "entry 1 (request 'r2'): prev_hash does not match" in err
    finally:
        path.write_text(original)
    assert run(root, capsys, "requests", "verify")[0] == 0


def _killed(root: Path, step: str, request_id: str, ids_file: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MEMUNLEARN_REQUESTS_KILL_AT": step}
    return subprocess.run([sys.executable, "-m", "memunlearn.cli", "forget", "--ids", str(ids_file), "--request-id",
                           request_id, "--root", str(root)], env=env, capture_output=True, text=True, timeout=600)


def test_kill_9_before_registering_leaves_the_state_as_before(project, capsys):
    root, _, ids = project
    before = state(root)
    result = _killed(root, "unlearned", "k1", write_ids(root, "k1.txt", ids[60:70]))
    assert result.returncode == -9, result.stderr
    assert state(root) == before


@pytest.mark.parametrize("step", ["registered", "ledger"])
def test_kill_9_after_a_durable_step_is_completed_by_the_rerun(project, capsys, step):
    root, _, ids = project
    request_id = f"k-{step}"
    ids_file = write_ids(root, f"{request_id}.txt", ids[70:75] if step == "registered" else ids[75:80])
    alias = state(root)[1]
    result = _killed(root, step, request_id, ids_file)
    assert result.returncode == -9, result.stderr
    entries = ledger.read(root / "requests/ledger.jsonl")
    assert state(root)[1] == alias  # the alias moves last
    code, _, err = run(root, capsys, "requests", "verify")
    if step == "registered":  # a version without its ledger entry: named, and the rerun completes it
        assert code == 1 and f"(request '{request_id}') is pending with no ledger entry" in err
        assert request_id not in {e["request_id"] for e in entries}
    else:  # the entry names an existing version
        assert code == 0 and entries[-1]["request_id"] == request_id
    code, out, err = run(root, capsys, "forget", "--ids", str(ids_file), "--request-id", request_id)
    assert code == 0, err
    mine = [v for v in client(root).search_model_versions(f"name = '{MODEL}'") if v.tags.get("request_id") == request_id]
    assert len(mine) == 1 and mine[0].tags["status"] == "accepted" and state(root)[1] == str(mine[0].version)
    assert [e["request_id"] for e in ledger.read(root / "requests/ledger.jsonl")].count(request_id) == 1
    assert run(root, capsys, "requests", "verify")[0] == 0


def test_retrain_trains_on_d_minus_every_forgotten_id_and_becomes_the_base(project, capsys):
    root, train, _ = project
    entries = ledger.read(root / "requests/ledger.jsonl")
    forgotten = ledger.forgotten_ids(entries, load_owner_ids(root / "data/prepared"))
    code, out, err = run(root, capsys, "requests", "retrain")
    assert code == 0, err
    entry = ledger.read(root / "requests/ledger.jsonl")[-1]
    assert entry["kind"] == "retrain" and entry["ids_count"] == len(forgotten) and state(root)[1] == entry["new_version"]
    from memunlearn.config import from_params
    from memunlearn.training import TrainConfig
    import yaml
    recipe = from_params(TrainConfig, yaml.safe_load((root / "params.yaml").read_text())["train"], "train")
    import torch
    from memunlearn.data import load_info
    cache = root / "data/oracle_cache"
    _, _, cached = cached_oracle(train.drop_ids(sorted(forgotten)), load_info(root / "data/prepared/meta.json"), recipe,
                                 torch.device("cpu"), 0, cache)
    assert cached and len(list(cache.iterdir())) == 1  # its one entry is D minus forgotten's, nothing else
    assert run(root, capsys, "requests", "verify")[0] == 0
