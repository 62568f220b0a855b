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
    cfg, _ = _interrupted_run(tmp_path, tiny_checkpoint)
    with pytest.raises(InputError, match="other examples"):
        train(_examples(30), cfg.embedder, cfg.fine_tune, tmp_path / "run")


def test_too_few_examples_is_a_clear_error(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    with pytest.raises(InputError, match="at least 2"):
        train(_examples(1), cfg.embedder, cfg.fine_tune, tmp_path / "x")


class _Tripwire:
    """Unpickling this creates the marker file: what a crafted trainer.pt could do instead."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _interrupted_run(tmp_path, tiny_checkpoint):
    cfg = tiny_config(tmp_path, tiny_checkpoint)
    cfg.fine_tune.save_every = 1

    def crash(step, total, loss):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run", on_step=crash)
    return cfg, tmp_path / "run" / "state"


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_a_crafted_trainer_pt_is_refused_and_never_run(tmp_path, tiny_checkpoint, how):
    import pickle

    import torch

    cfg, state = _interrupted_run(tmp_path, tiny_checkpoint)
    marker = tmp_path / "pwned"
    crafted = {"optimizer": {}, "schedule": {}, "torch_rng": _Tripwire(marker)}
    if how == "torch.save":
        torch.save(crafted, state / "trainer.pt")
    else:
        (state / "trainer.pt").write_bytes(pickle.dumps(crafted, protocol=2))
    with pytest.raises(InputError) as caught:
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run")
    assert not marker.exists()
    message = str(caught.value)
    assert "trainer.pt" in message and f"delete {state}" in message and "weights_only=False" not in message


def test_a_state_without_its_trainer_json_is_refused(tmp_path, tiny_checkpoint):
    cfg, state = _interrupted_run(tmp_path, tiny_checkpoint)
    (state / "trainer.json").unlink()
    with pytest.raises(InputError, match=f"trainer.json.*delete {state}"):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run")


@pytest.mark.parametrize("change", [
    {"step": 10**30}, {"step": -1}, {"losses": "x"}, {"inference_length": None}, {"format": 99},
])
def test_a_tampered_trainer_json_is_refused(tmp_path, tiny_checkpoint, change):
    import json

    cfg, state = _interrupted_run(tmp_path, tiny_checkpoint)
    meta = json.loads((state / "trainer.json").read_text())
    (state / "trainer.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(InputError, match="delete"):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run")


def test_a_state_that_does_not_fit_the_model_is_refused(tmp_path, tiny_checkpoint):
    import torch

    cfg, state = _interrupted_run(tmp_path, tiny_checkpoint)
    saved = torch.load(state / "trainer.pt", weights_only=True)
    saved["optimizer"]["param_groups"] = []
    torch.save(saved, state / "trainer.pt")
    with pytest.raises(InputError, match="does not fit"):
        train(_examples(), cfg.embedder, cfg.fine_tune, tmp_path / "run")
