"""A deletion request on text end to end through `memunlearn forget` (real MLflow registry in SQLite, real unlearning
of a micro GPT-2): two canaries forgotten by their ids land a tagged version, a ledger entry and a report with their
exposure before and after; bad ids change nothing (the image tests, tests/test_requests_e2e.py, cover the rest of
the shared path: the ledger's chain, kill -9, the retrain policy)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from memunlearn.modality import load_modality
from memunlearn.requests import ledger
from memunlearn.tracking import dataset_digest

import requests_project
from test_requests_e2e import run, state, tags, write_ids

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = requests_project.build_text(tmp_path_factory.mktemp("text_requests") / "project")
    return root, pd.read_csv(root / "data/prepared/canaries.csv")


def test_forgetting_two_canaries_by_id_lands_a_tagged_version_and_reports_their_exposure(project, capsys):
    root, canaries = project
    named = canaries[canaries["canary"].isin([0, 2])]  # one copy and three copies
    path = write_ids(root, "canaries.csv", named["example_id"])
    code, out, err = run(root, capsys, "forget", "--ids", str(path), "--request-id", "canaries-1")
    assert code == 0, err
    assert "ACCEPTED" in out and "Canary exposure" in out and state(root)[1] == "2"
    entry = ledger.read(root / "requests/ledger.jsonl")[-1]
    assert (entry["request_id"], entry["ids_count"], entry["parent_version"], entry["new_version"]) == (
        "canaries-1", len(named), "1", "2")
    assert sorted(entry["ids"]) == sorted(named["example_id"].tolist()) and entry["verdict"] == "accepted"
    version = tags(root, "2")
    method = yaml.safe_load((root / "params.yaml").read_text())["requests"]["method"]
    assert {k: version[k] for k in ("request_id", "parent_version", "ids_count", "method", "strategy", "scores",
                                    "status", "model")} == {
        "request_id": "canaries-1", "parent_version": "1", "ids_count": str(len(named)), "method": method,
        "strategy": "rum_f", "scores": "exact_prob", "status": "accepted", "model": "gpt2_micro"}
    assert version["ids_digest"] == entry["ids_digest"]
    data = load_modality("text").load(root / "data/prepared")
    assert version["data_digest"] == dataset_digest(data.train.example_ids, data.labels().to_numpy())
    report = json.loads((root / "requests/reports/canaries-1.json").read_text())
    (title, rows), = report["tables"].items()
    assert title.startswith("Canary exposure") and [(r["canary"], r["copies"], r["copies_forgotten"]) for r in rows] \
        == [(0, 1, 1), (2, 3, 3)]
    assert all(0 <= r[k] <= report["figures"]["max_exposure"] for r in rows for k in ("exposure_before",
                                                                                         "exposure_after"))
    assert {g["name"] for g in report["gates"]} == {"membership_audit", "utility", "no_overforgetting",
                                                    "canary_exposure"}
    assert "validation perplexity" in (root / "requests/reports/canaries-1.md").read_text()
    assert run(root, capsys, "requests", "verify")[0] == 0


def test_the_next_request_starts_from_the_new_version_with_its_proxy_scores_cached(project, capsys):
    root, canaries = project
    path = write_ids(root, "more.csv", canaries[canaries["canary"].isin([1, 3])]["example_id"])
    code, out, err = run(root, capsys, "forget", "--ids", str(path), "--request-id", "canaries-2")
    assert code == 0, err
    assert "scores final_confidence (computed now)" in out and state(root)[1] == "3"
    assert (tags(root, "3")["parent_version"], tags(root, "3")["scores"]) == ("2", "final_confidence")
    assert len(list((root / "data/requests/scores").glob("*.parquet"))) == 1  # version 2's, by content


@pytest.mark.parametrize("case", ["validation ids", "unknown ids", "other modality"])
def test_bad_input_is_one_line_and_changes_nothing(project, capsys, case):
    root, canaries = project
    data = load_modality("text").load(root / "data/prepared")
    bad = int(data.validation.example_ids[0]) if case == "validation ids" else 999999
    ids = [int(canaries["example_id"].iloc[-1])] + ([bad] if case != "other modality" else [])
    path = write_ids(root, "bad.csv", ids)
    params = (root / "params.yaml").read_text()
    if case == "other modality":
        requests_project.set_params(root, {"modality": "image"})
    before = state(root)
    try:
        code, _, err = run(root, capsys, "forget", "--ids", str(path), "--request-id", "bad")
    finally:
        (root / "params.yaml").write_text(params)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert {"validation ids": "belong to the validation split", "unknown ids": "1 unknown id(s) (999999)",
            "other modality": "modality: 'image', but"}[case] in err, err
    assert state(root) == before


def test_retrain_trains_a_language_model_on_d_minus_the_forgotten_canaries_and_makes_it_the_base(project, capsys):
    root, _ = project
    code, _, err = run(root, capsys, "requests", "retrain")
    assert code == 0, err
    entry = ledger.read(root / "requests/ledger.jsonl")[-1]
    assert entry["kind"] == "retrain" and state(root)[1] == entry["new_version"]
    assert tags(root, entry["new_version"])["model"] == "gpt2_micro"
    assert run(root, capsys, "requests", "verify")[0] == 0
