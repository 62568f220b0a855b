import numpy as np

from memlane.embed import make_embedder
from memlane.store.sqlite import SQLiteStore
from memlane.tune.examples import resolve_labels
from memlane.tune.mine import keep_negatives, mine


def test_candidates_too_close_to_the_positive_are_dropped_as_likely_false_negatives():
    # positive similarity 0.8, margin 0.95 -> threshold 0.76
    assert keep_negatives(0.8, [0.9, 0.77, 0.76, 0.5, 0.4], margin=0.95, k=2) == [2, 3]
    assert keep_negatives(0.8, [0.9, 0.77], margin=0.95, k=3) == []
    assert keep_negatives(0.8, [0.1, 0.2, 0.3], margin=1.0, k=0) == []


def test_mined_negatives_are_never_positives_and_respect_the_margin(tiny_store):
    path, cfg, labels = tiny_store
    cfg.fine_tune.hard_negatives = 3
    store = SQLiteStore(path)
    examples = resolve_labels(labels, store)[:15]
    store.close()
    mined = mine(str(path), examples, cfg)
    embedder = make_embedder(cfg.active_embedder())
    assert any(e.negatives for e in mined)
    for example in mined:
        assert len(example.negatives) == len(example.negative_ids) <= 3
        assert not set(example.negative_ids) & set(example.positive_ids)
        assert not set(example.negatives) & set(example.positives)
        if example.negatives:
            query = embedder.encode([example.query], purpose="query")[0]
            positive = float(np.max(embedder.encode(example.positives) @ query))
            assert np.all(embedder.encode(example.negatives) @ query <= 0.95 * positive + 1e-6)
