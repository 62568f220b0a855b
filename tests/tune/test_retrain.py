import time

import pytest

from memlane import Memory, MemoryConfig
from memlane.errors import ConfigError, InputError, ModelMismatchError
from memlane.memory import reindex
from memlane.tune.pipeline import drop_held_out, record_checkpoint, retrain
from memlane.tune.examples import Example


def test_the_whole_pipeline_runs_on_a_tiny_store_in_under_a_minute(tiny_store, tmp_path):
    path, cfg, eval_labels = tiny_store
    config_file = tmp_path / "memlane.toml"
    config_file.write_text(f'[embedder]\nmodel = "{cfg.embedder.model}"\ncache_path = "{cfg.embedder.cache_path}"\n\n'
                           "[fine_tune]\nbatch_size = 16\nlearning_rate = 1e-3\nepochs = 2\n")
    cfg = MemoryConfig.load(config_file, env={})
    started = time.perf_counter()
    result = retrain(path, cfg, tmp_path / "run", eval_queries=eval_labels, synthetic=True, config_path=config_file)
    assert time.perf_counter() - started < 60
    run = tmp_path / "run"
    for name in ("examples.jsonl", "mined.jsonl", "train/train.json", "gate.json", "gate.md", "retrain.json"):
        assert (run / name).exists(), name
    assert result.train.steps > 0 and result.examples > 0
    gain = result.gate.deltas["ndcg@10"]["delta"]
    assert result.gate.passed == (gain > 0 and gain >= cfg.fine_tune.min_gain)
    assert bool(list(run.glob("checkpoint-*"))) == result.gate.passed
    if result.gate.passed:  # recorded in the config file, which still loads and keeps its other settings
        deployed = MemoryConfig.load(config_file, env={})
        assert deployed.fine_tune.enabled and deployed.fine_tune.checkpoint_path == result.gate.checkpoint
        assert deployed.fine_tune.learning_rate == 1e-3


def test_a_rerun_resumes_from_the_recorded_stages(tiny_store, tmp_path):
    path, cfg, eval_labels = tiny_store
    first = retrain(path, cfg, tmp_path / "run", eval_queries=eval_labels, synthetic=True)
    trained_at = (tmp_path / "run" / "train" / "train.json").stat().st_mtime_ns
    again = retrain(path, cfg, tmp_path / "run", eval_queries=eval_labels, synthetic=True)
    assert again.train is None and again.gate.passed == first.gate.passed
    assert (tmp_path / "run" / "train" / "train.json").stat().st_mtime_ns == trained_at
    with pytest.raises(InputError, match="other inputs"):
        retrain(path, cfg, tmp_path / "run", eval_queries=eval_labels, labels=eval_labels)


def test_held_out_questions_are_never_trained_on():
    held = [Example("Where did Ana move?", "ana", ["m1"], ["x"])]
    train = [Example("where did  ana MOVE?", "ana", ["m1"], ["x"]), Example("Where did Ana move?", "bo", ["m2"], ["y"]),
             Example("What does Ana do?", "ana", ["m3"], ["z"])]
    kept, dropped = drop_held_out(train, held)
    assert dropped == 1 and [e.user_id for e in kept] == ["bo", "ana"]


def test_exactly_one_source_of_training_queries(tiny_store, tmp_path):
    path, cfg, eval_labels = tiny_store
    with pytest.raises(InputError, match="exactly one"):
        retrain(path, cfg, tmp_path / "run", eval_queries=eval_labels)


def test_recording_a_checkpoint_keeps_the_rest_of_the_config(tmp_path):
    config_file = tmp_path / "m.toml"
    config_file.write_text('# mine\n[retrieval]\nmode = "hybrid"\n\n[fine_tune]\nenabled = false\nepochs = 3\n')
    record_checkpoint(config_file, "/models/ckpt-1")
    loaded = MemoryConfig.load(config_file, env={})
    assert loaded.fine_tune.enabled and loaded.fine_tune.checkpoint_path == "/models/ckpt-1"
    assert loaded.fine_tune.epochs == 3 and loaded.retrieval.mode == "hybrid"
    assert config_file.read_text().startswith("# mine")


def test_enabling_a_checkpoint_needs_a_reindex_and_disabling_it_goes_back(tiny_store, tmp_path, tiny_checkpoint):
    path, cfg, _ = tiny_store
    import shutil

    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(tiny_checkpoint, checkpoint)
    (checkpoint / "marker.json").write_text("{}")  # other weights digest than the base
    tuned = cfg.model_copy(deep=True)
    tuned.fine_tune.enabled, tuned.fine_tune.checkpoint_path = True, str(checkpoint)
    with pytest.raises(ModelMismatchError, match="reindex"):
        Memory(path, tuned)
    reindex(path, tuned.active_embedder())
    with Memory(path, tuned) as memory:
        assert memory.stats().index.model == str(checkpoint.resolve())
        assert memory.search("painting", user_id="26")
    with pytest.raises(ModelMismatchError):
        Memory(path, cfg)
    reindex(path, cfg.active_embedder())
    Memory(path, cfg).close()


def test_enabled_without_a_checkpoint_is_a_config_error():
    cfg = MemoryConfig.from_dict({"fine_tune": {"enabled": True}})
    with pytest.raises(ConfigError, match="checkpoint_path"):
        cfg.active_embedder()
