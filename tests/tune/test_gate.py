import json
import os
import shutil

import pytest
from _support import tiny_config

from memlane import Memory
from memlane.store.sqlite import SQLiteStore
from memlane.tune.examples import resolve_labels
from memlane.tune.gate import Evaluation, decide, gate


def _evaluation(values):
    return Evaluation("m", {}, [{m: v for m in ("ndcg@10", "recall@1", "recall@5", "recall@10", "recall@20",
                                                "session_recall@5")} for v in values])


def test_the_gate_needs_a_real_gain_of_at_least_min_gain():
    before = _evaluation([0.5, 0.5, 0.5, 0.5])
    assert decide(before, _evaluation([0.5, 0.5, 0.5, 0.5]), 0.0)[0] is False  # equal is not better
    assert decide(before, _evaluation([0.4, 0.5, 0.5, 0.5]), 0.0)[0] is False
    passed, deltas, _ = decide(before, _evaluation([0.6, 0.6, 0.5, 0.5]), 0.0)
    assert passed and deltas["ndcg@10"]["delta"] == pytest.approx(0.05)
    assert decide(before, _evaluation([0.6, 0.6, 0.5, 0.5]), 0.1)[0] is False


@pytest.fixture
def minilm_store(tmp_path, locomo_slice):
    """The LoCoMo slice indexed by the bundled all-MiniLM-L6-v2, and its resolved questions."""
    from memlane.tune.labels import locomo_labels, write_label_rows

    cfg = tiny_config(tmp_path, "all-MiniLM-L6-v2")
    path = tmp_path / "store.db"
    with Memory(path, cfg) as memory:
        memory.ingest(locomo_slice.sessions, user_id="26")
    write_label_rows(tmp_path / "eval.jsonl", locomo_labels([locomo_slice]))
    store = SQLiteStore(path)
    examples = resolve_labels(tmp_path / "eval.jsonl", store)
    store.close()
    return path, cfg, examples


def _copy_of(model_dir, target):
    shutil.copytree(model_dir, target)
    return target


@pytest.mark.model
def test_a_corrupted_checkpoint_is_refused_and_discarded(tmp_path, minilm_store, tiny_checkpoint):
    path, cfg, examples = minilm_store
    candidate = _copy_of(tiny_checkpoint, tmp_path / "candidate")
    before_bytes = path.read_bytes()
    report = gate(path, examples, cfg, candidate, tmp_path / "out")
    assert not report.passed and report.checkpoint is None
    assert report.after["ndcg@10"] < report.before["ndcg@10"]
    assert not candidate.exists() and not list((tmp_path / "out").glob("checkpoint-*"))
    saved = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert saved["passed"] is False and len(saved["per_query"]) == len(examples)
    assert "REFUSED" in (tmp_path / "out" / "gate.md").read_text()
    assert path.read_bytes() == before_bytes  # the gate works on copies


@pytest.mark.model
def test_a_better_checkpoint_is_accepted_and_registered(tmp_path, minilm_store, tiny_checkpoint):
    path, cfg, examples = minilm_store
    from memlane.embed.local import resolve_model

    base = cfg.embedder.model_copy(update={"model": str(tiny_checkpoint)})
    candidate = tmp_path / "candidate"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2")[0], candidate)
    report = gate(path, examples, cfg, candidate, tmp_path / "out", base=base)
    assert report.passed and report.deltas["ndcg@10"]["ci_low"] > 0
    assert report.checkpoint == str((tmp_path / "out" / "checkpoint-1").resolve())
    assert os.path.isdir(report.checkpoint) and not candidate.exists()
    assert "PASSED" in (tmp_path / "out" / "gate.md").read_text()
