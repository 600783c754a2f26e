"""Deletion requests, the parts without a model: reading ids, checking them against the data, the hash-chained
ledger and its lock, the gates' statistics, the plan's levels and the typed config."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from memunlearn.config import ConfigError, from_params
from memunlearn.data.owner_ids import default_owner_ids, owner_map, owner_table, save_owner_ids
from memunlearn.registry import UnknownNameError
from memunlearn.requests import ledger
from memunlearn.requests.config import RequestsConfig
from memunlearn.models import build_model
from memunlearn.requests.gates import OutOfSubset, auc, auc_ci, class_matched, retrain_matched, verify
from memunlearn.training.loop import accuracy, predict_proba
from memunlearn.requests.ids import RequestError, check_ids, ids_digest, read_ids
from memunlearn.requests.scores import plan_subsets

TRAIN = np.arange(100, 200)
OTHERS = {"test": np.arange(0, 50), "validation": np.arange(50, 100)}
OWNERS = owner_map(default_owner_ids(range(200)))  # a built-in dataset's: owner id = str(example_id)


@pytest.mark.parametrize("name, text", [
    ("ids.csv", "id,reason\n101,gdpr\n102,gdpr\n101,again\n"),
    ("ids.json", "[101, 102, 101]"),
    ("ids.txt", "101\n\n102\n101\n"),
])
def test_read_ids_every_format_keeps_repeats(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert read_ids(path) == ["101", "102", "101"]  # owner ids, kept as strings
    assert read_ids([101, "cat/7.png"]) == ["101", "cat/7.png"]  # a list, as the deployment's `ids` may be


@pytest.mark.parametrize("name, text, says", [
    ("empty.txt", "  \n", "empty"),
    ("bad.json", "[101, 102", "not valid JSON"),
    ("dict.json", '{"id": 101}', "a JSON dict"),
    ("noid.csv", "example,reason\n101,x\n", "no `id` column"),
    ("floats.txt", None, "1.5 is not an id"),
    ("nested.json", '[101, [102]]', "[102] is not an id"),
    ("missing.txt", None, "cannot read it"),
])
def test_bad_files_are_one_line_naming_file_and_fix(tmp_path, name, text, says):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    if name == "floats.txt":
        path = path.with_suffix(".json")
        path.write_text("[101, 1.5]")
    with pytest.raises(RequestError) as error:
        read_ids(path)
    message = str(error.value)
    assert says in message and str(path) in message and "\n" not in message


def test_check_ids_unknown_and_other_splits_name_count_and_first_ids():
    with pytest.raises(RequestError, match=r"^7 unknown id\(s\) \(300, 301, 302, 303, 304, \.\.\.\)"):
        check_ids(["101", *map(str, range(300, 307))], OWNERS, TRAIN, OTHERS, set())
    with pytest.raises(RequestError, match=r"^2 id\(s\) belong to the test split, .*\(3, 4\)"):
        check_ids(["101", "3", "4"], OWNERS, TRAIN, OTHERS, set())
    with pytest.raises(RequestError, match=r"^1 id\(s\) belong to the validation split, .*\(60\)"):
        check_ids(["60", "101"], OWNERS, TRAIN, OTHERS, set())
    with pytest.raises(RequestError, match="no ids given"):
        check_ids([], OWNERS, TRAIN, OTHERS, set())


def test_check_ids_drops_repeats_and_names_already_forgotten():
    request = check_ids(["105", "101", "105", "103", "101"], OWNERS, TRAIN, OTHERS, forgotten={103, 150})
    assert request.ids == (101, 105) and request.owner_ids == ("101", "105")
    assert request.already_forgotten == ("103",) and request.duplicates == 2
    assert request.digest == ids_digest(["103", "101", "105"]) != ids_digest(["101", "105"])  # what was asked


def test_check_ids_maps_the_owners_ids_and_names_the_unknown_ones():
    """A dataset read from files: the request names the owner's ids, the data's example ids come from the map;
    the digest is over the owner's ids, so a re-prepared dataset (rows renumbered) gives the same one."""
    owners = owner_map(owner_table(range(200), [f"img-{i:03d}" for i in range(200)]))
    request = check_ids(["img-150", "img-101"], owners, TRAIN, OTHERS, set())
    assert request.ids == (101, 150) and request.owner_ids == ("img-101", "img-150")
    renumbered = owner_map(owner_table(range(200), [f"img-{(i - 7) % 200:03d}" for i in range(200)]))
    again = check_ids(["img-150", "img-101"], renumbered, TRAIN, OTHERS, set())
    assert again.ids == (108, 157) and again.digest == request.digest
    with pytest.raises(RequestError, match=r"^2 unknown id\(s\) \(101, cat\.png\): not in the data; .*owner_ids\.csv"):
        check_ids(["img-101", "101", "cat.png", "101"], owners, TRAIN, OTHERS, set())


def _chain(path, n=3):
    for i in range(n):
        ledger.append(path, {"kind": "forget", "request_id": f"r{i}", "ids": [i], "ids_digest": f"d{i}",
                             "new_version": str(i + 2)})
    return ledger.read(path)


def test_ledger_chain_names_an_edited_and_a_deleted_entry(tmp_path):
    path = tmp_path / "ledger.jsonl"
    entries = _chain(path)
    assert ledger.chain_problems(entries) == []
    assert entries[0]["prev_hash"] == ledger.GENESIS and entries[1]["prev_hash"] == entries[0]["hash"]
    assert ledger.forgotten_ids(entries, OWNERS) == {0, 1, 2}  # entries with ints only: owner ids str(id)

    edited = [dict(e) for e in entries]
    edited[1]["ids"] = [99]
    assert ledger.chain_problems(edited) == [
        "entry 2 (request 'r1'): its hash does not match its content: the entry was edited"]
    deleted = [entries[0], entries[2]]
    assert ledger.chain_problems(deleted) == [
        "entry 2 (request 'r2'): prev_hash does not match the entry before it: an entry was deleted or inserted "
        "before it"]


def test_ledger_verify_names_missing_versions_and_mismatched_tags(tmp_path):
    entries = _chain(tmp_path / "ledger.jsonl", 2)
    tags = {"2": {"request_id": "r0", "ids_digest": "d0"}}  # version 3 does not exist
    assert ledger.verify(entries, tags.get) == ["entry 2 (request 'r1'): model version 3 does not exist"]
    tags["3"] = {"request_id": "r1", "ids_digest": "other"}
    assert ledger.verify(entries, tags.get) == [
        "entry 2 (request 'r1'): model version 3 has ids_digest 'other', the ledger 'd1'"]


def test_ledger_file_is_json_lines_and_a_hand_broken_line_is_named(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path, 2)
    lines = path.read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["r0", "r1"]
    path.write_text(lines[0] + "\n{oops\n")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        ledger.read(path)


def test_lineage_lock_makes_the_second_caller_wait(tmp_path):
    path = tmp_path / "ledger.jsonl"
    order = []

    def second():
        with ledger.lineage_lock(path):
            order.append("second")

    with ledger.lineage_lock(path):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]


def _queue_and_write(path, order, name):
    with ledger.lineage_lock(path):
        with open(order, "a") as out:
            out.write(name + "\n")


def test_lineage_lock_serves_callers_in_the_order_they_asked_and_skips_a_killed_ones_ticket(tmp_path):
    """Processes, as two `memunlearn forget` at once are: each waits behind the earlier tickets, not in the
    order the kernel wakes them; a caller killed while it waits (kill -9: its ticket stays) blocks nobody."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")  # this process's imports: the children start in milliseconds
    path, order = tmp_path / "ledger.jsonl", tmp_path / "order.txt"
    queue = tmp_path / "ledger.jsonl.queue"

    def start(name: str, tickets: int):
        child = fork.Process(target=_queue_and_write, args=(path, order, name))
        child.start()
        deadline = time.monotonic() + 30
        while len(list(queue.glob("[0-9]*"))) < tickets and time.monotonic() < deadline:
            time.sleep(0.01)
        return child

    with ledger.lineage_lock(path):  # held: every caller below queues behind this one
        killed = start("killed", 2)
        killed.kill()
        killed.join(5)
        callers = [start(name, tickets) for name, tickets in (("first", 3), ("second", 4), ("third", 5))]
        assert len(list(queue.glob("[0-9]*"))) == 5 and not order.exists()  # the killed one's ticket stays
    for child in callers:
        child.join(30)
    assert order.read_text().split() == ["first", "second", "third"]
    assert list(queue.iterdir()) == []  # every ticket removed, the killed caller's included


def test_auc_and_its_ci():
    assert auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5  # ties count half
    rng = np.random.default_rng(0)
    same = auc_ci(rng.normal(size=200), rng.normal(size=200), seed=0)
    assert same[0] < 0.5 < same[1] and same[1] - same[0] < 0.2


def test_class_matched_draws_per_example_from_the_same_class(synthetic):
    train, test, _, _ = synthetic
    forget = train.take(np.arange(6))
    matched = class_matched(forget, test, per_example=3, seed=0)
    assert len(matched) == 18
    assert sorted(matched.labels.tolist()) == sorted(np.repeat(forget.labels.numpy(), 3).tolist())
    assert np.isin(matched.example_ids.numpy(), test.example_ids.numpy()).all()


def test_verify_forwards_each_split_once_and_its_figures_are_the_direct_ones(synthetic):
    train, test, info, _ = synthetic
    start, candidate = (build_model("small_cnn", 1, info.num_classes, info.image_size, seed=s) for s in (0, 1))
    seen = {id(start): [], id(candidate): []}  # rows of each forward pass, per model
    for m in (start, candidate):
        m.register_forward_hook(lambda mod, args, out: seen[id(mod)].append(len(args[0])))
    forget, retain, heldout = train.take(np.arange(8)), train.take(np.arange(8, 240)), test.take(np.arange(60))
    config = RequestsConfig(heldout_per_example=2)
    gates, figures = verify(start, candidate, forget, retain, heldout, test.take(np.arange(60, 120)), info, "cpu", config)
    # start: members (60 of R), held-out (60), F (8), class-matched (16), test (60); candidate: F, matched, test
    assert sorted(seen[id(start)]) == [8, 16, 60, 60, 60] and sorted(seen[id(candidate)]) == [8, 16, 60]

    def p_y(model, split):
        return predict_proba(model, split, info, "cpu")[np.arange(len(split)), split.labels].numpy()

    matched = class_matched(forget, heldout, 2, config.seed)
    assert figures["audit_auc"] == pytest.approx(auc(p_y(candidate, forget), p_y(candidate, matched)), abs=1e-6)
    assert figures["audit_auc_before"] == pytest.approx(auc(p_y(start, forget), p_y(start, matched)), abs=1e-6)
    for key, model, split in [("test_acc", candidate, test.take(np.arange(60, 120))), ("forget_acc", candidate, forget),
                              ("forget_acc_before", start, forget), ("matched_heldout_acc", candidate, matched)]:
        assert figures[key] == pytest.approx(accuracy(predict_proba(model, split, info, "cpu"), split.labels), abs=1e-6)
    assert [g.name for g in gates] == ["membership_audit", "utility", "no_overforgetting"]
    assert gates[1].figure == pytest.approx(figures["test_acc_before"] - figures["test_acc"], abs=1e-9)


def test_retrain_matched_pairs_a_retrain_miss_with_held_out_examples_the_model_misses():
    # D: 10% of examples every out-of-subset model gets wrong (planted noise), 90% every one gets right
    out = OutOfSubset(forget=np.array([0.0, 1.0]), train=np.r_[np.zeros(10), np.ones(90)])
    heldout_p = np.random.default_rng(1).permutation(np.arange(100) / 100)  # the starting model's p_y on held-out
    picks = retrain_matched(out, heldout_p, per_example=200, seed=0)
    missed, learned = heldout_p[picks[:200]], heldout_p[picks[200:]]  # F's order, per_example each
    assert missed.max() < 0.10  # the lowest 10% of held-out by p_y: the ones a model that never saw them misses
    assert learned.min() >= 0.10 and learned.mean() > 0.5  # drawn over the rest, not only the top
    assert len(np.unique(learned)) > 50


def test_verify_compares_f_with_the_retrain_matched_reference_when_exact_scores_cover_it(synthetic):
    train, test, info, _ = synthetic
    start, candidate = (build_model("small_cnn", 1, info.num_classes, info.image_size, seed=s) for s in (0, 1))
    forget, retain, heldout = train.take(np.arange(8)), train.take(np.arange(8, 240)), test.take(np.arange(60))
    out = OutOfSubset(forget=np.r_[np.zeros(4), np.ones(4)], train=np.r_[np.zeros(20), np.ones(220)])
    config = RequestsConfig(heldout_per_example=3)
    _, figures = verify(start, candidate, forget, retain, heldout, test.take(np.arange(60, 120)), info, "cpu",
                        config, out)
    heldout_p = predict_proba(start, heldout, info, "cpu")[np.arange(60), heldout.labels].numpy()
    matched = heldout.take(retrain_matched(out, heldout_p, 3, config.seed))
    assert figures["reference"] == "held-out examples matched by out-of-subset accuracy"
    assert figures["forget_out_of_subset_acc"] == 0.5 and figures["matched_heldout_size"] == 24
    assert figures["matched_heldout_acc"] == pytest.approx(
        accuracy(predict_proba(candidate, matched, info, "cpu"), matched.labels), abs=1e-6)
    _, classes = verify(start, candidate, forget, retain, heldout, test.take(np.arange(60, 120)), info, "cpu",
                        RequestsConfig(heldout_per_example=3, reference="class"), out)
    assert classes["reference"] == "class-matched held-out examples"
    # an example no subset model left out has no stand-in: it alone is class-matched
    partial = OutOfSubset(forget=np.r_[np.nan, np.zeros(3), np.ones(4)], train=out.train)
    _, mixed = verify(start, candidate, forget, retain, heldout, test.take(np.arange(60, 120)), info, "cpu", config,
                      partial)
    assert mixed["reference"].endswith("(1 of F by class: no out-of-subset model)")
    assert mixed["matched_heldout_size"] == 24 and mixed["forget_out_of_subset_acc"] == pytest.approx(4 / 7)


def test_plan_levels_by_terciles_of_d():
    scores = pd.Series(np.arange(90, dtype=float), index=np.arange(1000, 1090))  # terciles 29.67 and 59.33
    levels = plan_subsets(np.array([1000, 1029, 1030, 1059, 1060, 1089]), scores)
    assert levels["low"].tolist() == [1000, 1029] and levels["mid"].tolist() == [1030, 1059]
    assert levels["high"].tolist() == [1060, 1089]


def test_requests_config_checks_ranges_and_the_proxy():
    assert from_params(RequestsConfig, {}, "requests") == RequestsConfig()
    with pytest.raises(ConfigError, match=r"requests.proxy: 'confidence' is not a final-model proxy"):
        from_params(RequestsConfig, {"proxy": "confidence"}, "requests")
    with pytest.raises(ConfigError, match=r"requests.reference: got 'oracle'; write one of: retrain, class"):
        from_params(RequestsConfig, {"reference": "oracle"}, "requests")
    with pytest.raises(ConfigError, match=r"requests.audit_margin: got 2"):
        from_params(RequestsConfig, {"audit_margin": 2.0}, "requests")
    with pytest.raises(UnknownNameError, match=r"requests.strategy: unknown RUM strategy 'nope'"):
        from_params(RequestsConfig, {"strategy": "nope"}, "requests")


def test_retrain_policy_asks_after_a_share_of_d_a_number_of_requests_or_a_failed_gate(tmp_path):
    from memunlearn.requests import Project
    from memunlearn.requests.service import retrain_due
    from memunlearn.tracking import TrackingTarget
    from memunlearn.training import TrainConfig

    def project(**policy):
        return Project(tmp_path, TrackingTarget("sqlite:///unused.db", None), RequestsConfig(**policy), TrainConfig())

    entries = [{"kind": "forget", "ids": list(range(10))}, {"kind": "forget", "ids": list(range(10, 20))}]
    assert retrain_due(project(), entries, 100) is None  # the default: never
    assert "20.0% of D forgotten" in retrain_due(project(retrain_after_fraction=0.2), entries, 100)
    assert retrain_due(project(retrain_after_fraction=0.25), entries, 100) is None
    assert "2 requests since the base" in retrain_due(project(retrain_after_requests=2), entries, 100)
    rebased = entries + [{"kind": "retrain", "ids": []}]
    assert retrain_due(project(retrain_after_requests=2, retrain_after_fraction=0.2), rebased, 100) is None
    assert "failed a gate" in retrain_due(project(retrain_after_failed_gate=True), entries, 100, gate_failed=True)


def test_memunlearn_check_covers_the_requests_section():
    from pathlib import Path

    import yaml

    from memunlearn.params import check_params

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    assert check_params(params) == []
    params["requests"] = {**params["requests"], "method": "nope", "max_utility_drop": "0.02"}
    problems = check_params(params)
    assert any(p.startswith("requests.max_utility_drop: got \"0.02\"") for p in problems), problems
    params["requests"]["max_utility_drop"] = 0.02
    assert check_params(params) == [
        "requests.method: 'nope' has no methods.nope block; add one (methods.nope: {} takes the defaults)"]


def test_without_forgotten_leaves_the_ledgers_accepted_ids_out_of_d(tmp_path, synthetic):
    """What every stage that reads D does (forgotten.py): forget entries count, retrain entries do not; no ledger
    or an empty one leaves D whole; a hand-edited line is a one-line error naming the file."""
    from memunlearn.forgotten import without_forgotten
    from memunlearn.modality.image.pipeline import PreparedImages

    train, test, info, _ = synthetic
    data = PreparedImages(tmp_path, train, None, test, info)
    assert without_forgotten(data, tmp_path / "none.jsonl", tmp_path) is data
    path = tmp_path / "ledger.jsonl"
    path.write_text("")
    assert without_forgotten(data, path, tmp_path / "no_map_needed") is data  # nothing forgotten: no map read
    save_owner_ids(default_owner_ids(torch.cat([train.example_ids, test.example_ids]).numpy()), tmp_path)
    ids = train.example_ids[:4].tolist()
    ledger.append(path, {"kind": "forget", "request_id": "a", "ids": ids[:3]})  # a line before owner ids: ints
    ledger.append(path, {"kind": "retrain", "request_id": "retrain-1", "ids": []})
    ledger.append(path, {"kind": "forget", "request_id": "b", "ids": [0], "owner_ids": [str(ids[3])]})
    left = without_forgotten(data, path, tmp_path).train
    assert len(left) == len(train) - 4 and not set(ids) & set(left.example_ids.tolist())
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=f"{path} line 4: not JSON; the ledger was edited by hand"):
        without_forgotten(data, path, tmp_path)


def test_a_re_prepared_dataset_still_leaves_out_the_forgotten_owners_examples(tmp_path, synthetic, caplog):
    """The ledger names owner ids: after the data is prepared again with its rows renumbered, the same owners'
    examples are left out (new example ids), and an owner id the data no longer holds is logged, not an error."""
    from memunlearn.forgotten import without_forgotten
    from memunlearn.modality.image.pipeline import PreparedImages

    train, test, info, _ = synthetic
    data = PreparedImages(tmp_path, train, None, test, info)
    every = torch.cat([train.example_ids, test.example_ids]).numpy()
    save_owner_ids(owner_table(every, [f"file-{i}" for i in every]), tmp_path)
    path = tmp_path / "ledger.jsonl"
    ledger.append(path, {"kind": "forget", "request_id": "a", "ids": [0, 1],
                         "owner_ids": [f"file-{every[0]}", f"file-{every[1]}", "file-gone"]})
    left = without_forgotten(data, path, tmp_path).train
    assert set(every[:2]).isdisjoint(left.example_ids.tolist()) and len(left) == len(train) - 2
    shifted = np.roll(every, 5)  # re-prepared: example id every[k] now holds the file of every[k - 5]
    save_owner_ids(owner_table(every, [f"file-{i}" for i in shifted]), tmp_path)
    with caplog.at_level("WARNING", logger="memunlearn"):
        left = without_forgotten(data, path, tmp_path).train
    assert set(every[5:7]).isdisjoint(left.example_ids.tolist()) and set(every[:2]) <= set(left.example_ids.tolist())
    assert "1 owner id(s) forgotten by deletion requests are not in" in caplog.text and "file-gone" in caplog.text


def test_request_project_takes_torch_threads_from_the_environment_and_names_a_bad_value(tmp_path, monkeypatch):
    import torch

    from memunlearn.cli import request_project

    (tmp_path / "params.yaml").write_text("requests: {seed: 0}\n")
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("MEMUNLEARN_THREADS", "2")
        request_project(tmp_path)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("MEMUNLEARN_THREADS", "two")
        with pytest.raises(ConfigError, match="MEMUNLEARN_THREADS='two': write a positive integer"):
            request_project(tmp_path)
        assert torch.get_num_threads() == 2  # unchanged by the bad value
    finally:
        torch.set_num_threads(before)


def test_a_flow_run_waits_for_unfinished_runs_triggered_before_it_on_its_project(tmp_path):
    import uuid
    from datetime import datetime, timedelta, timezone

    from prefect.client.schemas.objects import FlowRun

    from flows.forget import earlier_requests

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    flow_id = uuid.uuid4()

    def run(name: str, created_s: float, repo: str, start_s: float | None = None) -> FlowRun:
        return FlowRun(id=uuid.uuid4(), name=name, flow_id=flow_id, created=now + timedelta(seconds=created_s),
                       expected_start_time=now + timedelta(seconds=created_s if start_s is None else start_s),
                       parameters={"repo_dir": repo})

    project, other = tmp_path / "project", tmp_path / "other"
    me = run("me", 10, str(project))
    runs = [me, run("before", 5, str(project)), run("after", 15, str(project)), run("elsewhere", 5, str(other)),
            run("scheduled-later", 5, str(project), start_s=3600)]
    ahead = earlier_requests(runs, me, project, now + timedelta(seconds=20))
    assert [r.name for r in ahead] == ["before"]
    assert earlier_requests(runs[2:3] + [me], runs[2], project, now + timedelta(seconds=20)) == [me]
