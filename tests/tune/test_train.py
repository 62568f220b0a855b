import pytest
from _support import tiny_config

from memlane.errors import InputError
from memlane.tune.examples import Example
from memlane.tune.train import plan_batches, train


def _examples(n=24):
    return [Example(f"what about topic {i}?", "u", [f"m{i}"], [f"Mel: I love topic {i} a lot"],
                    negatives=[f"Mel: topic {i + 1} is dull", f"Mel: topic {i + 2} bores me"]) for i in range(n)]


def test_batches_never_repeat_a_positive_and_replay_for_a_seed():
    examples = _examples(10) + [Example("again?", "u", ["m0"], ["Mel: I love topic 0 a lot"])]
    plan = plan_batches(examples, batch_size=4, seed=1, epoch=0)
    for batch in plan:
        positives = [examples[i].positives[0] for i in batch]
        assert len(positives) == len(set(positives)) and len(batch) <= 4
    assert plan == plan_batches(examples, batch_size=4, seed=1, epoch=0)
    assert plan != plan_batches(examples, batch_size=4, seed=1, epoch=1)
    assert sorted(i for b in plan for i in b) == list(range(11))


def _weights(model_dir):
    from safetensors.numpy import load_file

    return load_file(str(next(model_dir.rglob("model.safetensors"))))


def test_training_lowers_the_loss_and_is_deterministic(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    cfg.fine_tune.epochs = 3
    steps = []
    first = train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "a", on_step=lambda s, t, l: steps.append((s, t)))
    second = train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "b")
    assert steps[-1] == (first.steps, first.steps) and first.steps == 6
    assert sum(first.losses[-2:]) < sum(first.losses[:2])
    a, b = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    assert all((a[k] == b[k]).all() for k in a)
    assert (tmp_path / "a" / "train.json").exists() and not (tmp_path / "a" / "state").exists()


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    cfg.fine_tune.epochs = 3
    cfg.fine_tune.save_every = 2
    reference = train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "ref")

    def crash(step, total, loss):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run", on_step=crash)
    assert (tmp_path / "run" / "state" / "trainer.pt").exists()
    resumed = train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run")
    assert resumed.resumed_at_step == 2 and resumed.losses == reference.losses
    a, b = _weights(tmp_path / "ref" / "model"), _weights(tmp_path / "run" / "model")
    assert all((a[k] == b[k]).all() for k in a)


def test_resuming_with_other_examples_is_refused(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    cfg.fine_tune.save_every = 1

    def crash(step, total, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run", on_step=crash)
    with pytest.raises(InputError, match="other examples"):
        train(_examples(30), cfg.embedder, cfg.fine_tune, tmp_path / "run")


def test_too_few_examples_is_a_clear_error(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    with pytest.raises(InputError, match="at least 2"):
        train(_examples(1), cfg.embedder, cfg.fine_tune, tmp_path / "x")
