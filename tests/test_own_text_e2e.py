"""A JSONL file of your own texts end to end (docs/own-data.md): the text run's stages up to the forget set, with
the records' ids in every output. Its own module so that pytest-xdist runs it beside the folder-of-PNGs module
(tests/test_own_data_e2e.py), whose helpers it shares."""
from __future__ import annotations

import json

import pytest
import yaml

from e2e_project import REPO, _merge, commit, dvc, tiny_project  # tests/ is on sys.path under pytest
from test_own_data_e2e import UP_TO_PARTITION, owners_in_outputs, ran

pytestmark = pytest.mark.e2e

TINY_TEXT = {
    "data": {"dataset": "text_jsonl", "path": "records.jsonl",
             "text": {"vocab_size": 300, "seq_len": 24, "max_sequences": 0, "canary_copies": [1, 4],
                      "canaries_per_count": 1, "canary_digits": 3}},
    "train": {"model": "gpt2_micro", "epochs": 1, "device": "cpu"},
    "memorize": {"num_models": 2},
    "proxies": {"device": "cpu"},
    "partition": {"device": "cpu"},
}


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    preset = yaml.safe_load((REPO / "params/text.yaml").read_text())
    with tiny_project(tmp_path_factory.mktemp("own_texts"), _merge(preset, TINY_TEXT)) as root:
        words = ["alpha", "beta", "gamma", "delta", "omega"]
        lines = [json.dumps({"id": f"note-{i:03d}", "text": " ".join(words[(i + k) % 5] for k in range(3 + i % 4))})
                 for i in range(60)]
        (root / "records.jsonl").write_text("\n".join(lines) + "\n")
        commit(root)
        yield root, dvc(root, "repro", "partition", timeout=900)


def test_a_jsonl_file_runs_to_the_forget_set_with_the_records_ids(texts):
    root, first = texts
    assert ran(first.stdout) == UP_TO_PARTITION
    owners, forget = owners_in_outputs(root)
    canaries = {"canary-0-0", *(f"canary-1-{c}" for c in range(4))}
    assert sorted(owners) == sorted({f"note-{i:03d}" for i in range(60)} | canaries)
    assert set(forget["owner_id"]) == canaries  # kind canaries: every copy
