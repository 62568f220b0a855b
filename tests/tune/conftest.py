"""Fixtures for the fine-tuning tests: a tiny random checkpoint and a store holding a real LoCoMo slice."""

from __future__ import annotations

import pytest
from _support import DATA, make_tiny_checkpoint, tiny_config

from memlane import Memory
from memlane.ingest.formats import load_conversations
from memlane.tune.labels import locomo_labels, write_label_rows

SLICE_SESSIONS = 4


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def locomo_slice():
    """The first sessions of LoCoMo conversation 26 and the questions whose evidence lies in them."""
    conversation = load_conversations(DATA / "locomo" / "26.json")[0]
    conversation.sessions = conversation.sessions[:SLICE_SESSIONS]
    return conversation


@pytest.fixture
def tiny_store(tmp_path, tiny_checkpoint, locomo_slice):
    """(store path, config, eval labels path): the LoCoMo slice embedded by the tiny checkpoint."""
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    path = tmp_path / "store.db"
    with Memory(path, cfg) as memory:
        memory.ingest(locomo_slice.sessions, user_id="26")
    labels = tmp_path / "eval.jsonl"
    write_label_rows(labels, locomo_labels([locomo_slice]))
    return path, cfg, labels
