"""Contrastive fine-tuning of a sentence-transformers embedder on CPU.

The loss is InfoNCE as sentence-transformers' MultipleNegativesRankingLoss computes it: for a
batch of B queries, each query's positive must out-score the B-1 other positives (in-batch
negatives) and every mined hard negative in the batch, after cosines are scaled by 1/tau.
Batches never hold two examples with the same positive or query, so no in-batch "negative" is
really an answer.

Resumable: every `save_every` steps the model, optimizer, schedule and random state are saved
under OUT/state; a rerun with the same inputs continues from there and ends with the same
weights as an uninterrupted run. The finished model is written to OUT/model. The saved state is
data only: tensors and plain containers in OUT/state/trainer.pt, read back with
`torch.load(weights_only=True)` so a tampered file cannot run code, and the step, losses and
inputs' fingerprint in OUT/state/trainer.json.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from memlane.config import EmbedderConfig, FineTuneConfig
from memlane.errors import InputError
from memlane.tune.examples import Example

StepCallback = Callable[[int, int, float], None]  # (step, total steps, loss)


@dataclass
class TrainReport:
    base_model: str
    model_path: str
    examples: int
    steps: int
    epochs: int
    seconds: float
    resumed_at_step: int
    first_loss: float
    last_loss: float
    settings: dict = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)


def plan_batches(examples: Sequence[Example], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled batches of example indices, no two in a batch sharing a positive or a query.

    Greedy: walk a seeded shuffle, put each example in the first open batch without a clash. The
    plan depends only on (examples, batch_size, seed, epoch), so a resumed run replays it.
    """
    order = list(range(len(examples)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    batches: list[list[int]] = []
    keys: list[set[str]] = []
    for index in order:
        example = examples[index]
        mine = {"q:" + example.query.lower()} | {"p:" + p for p in example.positives}
        for batch, taken in zip(batches, keys):
            if len(batch) < batch_size and not (mine & taken):
                batch.append(index)
                taken |= mine
                break
        else:
            batches.append([index])
            keys.append(set(mine))
    return [b for b in batches if len(b) > 1]  # a lone example has no in-batch negative to learn from


def _fingerprint(examples: Sequence[Example], base_model: str, settings: dict) -> str:
    digest = hashlib.sha256(json.dumps([base_model, settings], sort_keys=True).encode())
    for e in examples:
        digest.update(json.dumps([e.query, e.positives, e.negatives]).encode())
    return digest.hexdigest()[:16]


def train(examples: Sequence[Example], embedder: EmbedderConfig, tune: FineTuneConfig, out_dir: str | Path, *,
          on_step: StepCallback | None = None) -> TrainReport:
    """Fine-tune `embedder.model` on `examples`; returns the report (the model is in OUT/model)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from memlane.embed.local import _offline_env, _quiet_transformers, resolve_model

    if len(examples) < 2:
        raise InputError(f"training needs at least 2 examples, got {len(examples)}", field="examples",
                         fix="label more queries, or generate synthetic ones (memlane tune synth)")
    out = Path(out_dir)
    state_dir = out / "state"
    settings = tune.model_dump(include={"epochs", "learning_rate", "warmup_ratio", "batch_size", "temperature",
                                        "seed", "max_seq_length", "hard_negatives"})
    settings.update(query_prefix=embedder.query_prefix, document_prefix=embedder.document_prefix)
    base_path, base_name = resolve_model(embedder.model)
    fingerprint = _fingerprint(examples, base_name, settings)
    plans = [plan_batches(examples, tune.batch_size, tune.seed, epoch) for epoch in range(tune.epochs)]
    total = sum(len(p) for p in plans)
    if total == 0:
        raise InputError("no training batch could be formed: every example shares its positive with the others",
                         field="examples", fix="give examples with different positives")

    _offline_env()
    torch.manual_seed(tune.seed)
    resume = _read_state(state_dir, fingerprint, total)
    with _quiet_transformers():
        model = SentenceTransformer(str(state_dir / "model" if resume else base_path), device="cpu", local_files_only=True)
    inference_length = model.max_seq_length if not resume else resume["inference_length"]
    model.max_seq_length = min(tune.max_seq_length, inference_length)
    loss_fn = MultipleNegativesRankingLoss(model, scale=1.0 / tune.temperature)
    optimizer = torch.optim.AdamW(model.parameters(), lr=tune.learning_rate, weight_decay=0.01)
    warmup = int(tune.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total))
    step, losses = 0, []
    if resume:
        _restore(state_dir, resume, optimizer, schedule)
        step, losses = resume["step"], resume["losses"]
    resumed_at = step
    preprocess = getattr(model, "preprocess", None) or model.tokenize

    started = time.perf_counter()
    model.train()
    flat = [(epoch, batch) for epoch, plan in enumerate(plans) for batch in plan]
    for epoch, batch in flat[step:]:
        chosen = [examples[i] for i in batch]
        rng = random.Random(f"{tune.seed}:{epoch}:{batch[0]}")
        negatives = min([tune.hard_negatives] + [len(e.negatives) for e in chosen])
        columns = [[embedder.query_prefix + e.query for e in chosen],
                   [embedder.document_prefix + rng.choice(e.positives) for e in chosen]]
        columns += [[embedder.document_prefix + e.negatives[n] for e in chosen] for n in range(negatives)]
        features = [preprocess(column) for column in columns]
        loss = loss_fn(features, None)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        losses.append(round(float(loss.detach()), 5))
        if step % tune.save_every == 0 and step < total:
            _write_state(state_dir, model, optimizer, schedule, step, losses, fingerprint, inference_length)
        if on_step:
            on_step(step, total, losses[-1])

    model.eval()
    model.max_seq_length = inference_length
    final = out / "model"
    partial = out / "model.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with _quiet_transformers():
        model.save(str(partial))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    shutil.rmtree(state_dir, ignore_errors=True)
    report = TrainReport(
        base_model=base_name, model_path=str(final.resolve()), examples=len(examples), steps=total,
        epochs=tune.epochs, seconds=round(time.perf_counter() - started, 1), resumed_at_step=resumed_at,
        first_loss=losses[0], last_loss=losses[-1], settings=settings, losses=losses,
    )
    (out / "train.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1 over `warmup` steps, then linear decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


STATE_FORMAT = 1


def _write_state(state_dir: Path, model, optimizer, schedule, step: int, losses: list[float], fingerprint: str,
                 inference_length: int) -> None:
    import torch

    from memlane.embed.local import _quiet_transformers

    partial = state_dir.with_name(state_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with _quiet_transformers():
        model.save(str(partial / "model"))
    # Tensors and plain containers only, so that reading it back needs no unpickling of objects.
    torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "torch_rng": torch.get_rng_state()}, partial / "trainer.pt")
    (partial / "trainer.json").write_text(json.dumps({
        "format": STATE_FORMAT, "fingerprint": fingerprint, "step": step, "losses": losses,
        "inference_length": inference_length}), encoding="utf-8")
    shutil.rmtree(state_dir, ignore_errors=True)
    partial.rename(state_dir)


def _read_state(state_dir: Path, fingerprint: str, total: int) -> dict | None:
    """The saved state of an interrupted run with the same inputs, or None when there is none.

    trainer.pt is loaded with `weights_only=True`: a file holding anything but tensors and plain
    data (a crafted pickle) is refused with an InputError, never executed.
    """
    import torch

    file = state_dir / "trainer.pt"
    if not file.exists():
        return None
    meta_file = state_dir / "trainer.json"
    restart = f"delete {state_dir} to restart training from the first step"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("the interrupted run's state has no trainer.json (written by an older memlane, or "
                         "damaged)", file=str(meta_file), fix=restart) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"cannot read the interrupted run's state: {exc}", file=str(meta_file), fix=restart) from None
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise InputError("not a training state this memlane writes", file=str(meta_file), fix=restart)
    if meta.get("fingerprint") != fingerprint:
        raise InputError(
            f"{state_dir} holds an interrupted run with other examples or settings",
            field="out", fix=f"delete {state_dir} to start afresh, or rerun with the same inputs to resume",
        )
    step, losses, length = meta.get("step"), meta.get("losses"), meta.get("inference_length")
    if not (_is_int(step) and 0 < step < total and isinstance(losses, list) and len(losses) == step
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in losses)
            and _is_int(length) and length > 0):
        raise InputError(f"the step ({step!r:.20}), losses or inference length do not fit a run of {total} steps",
                         file=str(meta_file), fix=restart)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for a bad file
        raise InputError(
            f"cannot load the saved training state safely ({type(exc).__name__}): the file holds something "
            "other than tensors and plain data, or is damaged; it was not run", file=str(file), fix=restart,
        ) from None
    if not (isinstance(state, dict) and isinstance(state.get("optimizer"), dict)
            and isinstance(state.get("schedule"), dict) and isinstance(state.get("torch_rng"), torch.Tensor)
            and state["torch_rng"].dtype == torch.uint8):
        raise InputError("the saved training state lacks the optimizer, schedule or random state",
                         file=str(file), fix=restart)
    return {**state, "step": step, "losses": losses, "inference_length": length}


def _restore(state_dir: Path, state: dict, optimizer, schedule) -> None:
    """Load the saved optimizer, schedule and random state; InputError when they do not fit this run."""
    import torch

    unknown = set(state["schedule"]) - set(schedule.state_dict())
    try:
        if unknown:
            raise ValueError(f"unknown schedule entries {sorted(unknown)}")
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["torch_rng"])
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise InputError(f"the saved training state does not fit this model: {str(exc)[:200]}",
                         file=str(state_dir / "trainer.pt"),
                         fix=f"delete {state_dir} to restart training from the first step") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
