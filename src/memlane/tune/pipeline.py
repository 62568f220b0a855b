"""`memlane retrain`: examples -> hard negatives -> training -> gate, resumable stage by stage.

Every stage writes one output under OUT and a rerun skips the stages whose output exists, so an
interrupted run continues where it stopped (training itself resumes from its last saved step).
OUT/retrain.json records the inputs; a rerun with other inputs is refused rather than mixed.

    OUT/examples.jsonl   resolved labels, or synthetic queries
    OUT/mined.jsonl      the same with hard negatives
    OUT/train/           the trained candidate (train/model) and train.json
    OUT/gate.json, .md   the verdict; OUT/checkpoint-N when it passed
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from memlane.config import MemoryConfig
from memlane.errors import InputError
from memlane.tune.examples import Example, read_examples, resolve_labels, write_examples, write_text_atomic
from memlane.tune.gate import GateReport, check_gate_inputs, gate
from memlane.tune.mine import mine
from memlane.tune.train import TrainReport, train

Status = Callable[[str], None]
Progress = Callable[[int, int], None]


@dataclass
class RetrainResult:
    examples: int
    dropped_overlapping: int
    train: TrainReport | None
    gate: GateReport


def synthesize(store_path: str | Path, config: MemoryConfig, users: list[str] | None = None,
               status: Status = lambda _: None) -> list[Example]:
    """Synthetic examples for `users` (default: every user): by the LLM if one is configured, else by
    rules; for each user's turns and document chunks alike (see `synth.rule_queries`)."""
    from memlane.llm import LLMClient
    from memlane.store import open_store
    from memlane.tune.synth import llm_queries, rule_queries

    store = open_store(store_path, create=False)
    try:
        known = store.users()
        chosen = users or known
        missing = sorted(set(chosen) - set(known))
        if missing:
            raise InputError(f"no memories for user(s) {', '.join(missing)} in {store_path}", field="users",
                             fix="pick users that have memories (memlane stats lists the store)")
        per_user = config.fine_tune.synthetic_per_user
        seed = config.fine_tune.seed
        examples: list[Example] = []
        client = LLMClient(config.llm) if config.llm.configured else None
        for user in chosen:
            status(f"writing queries for user {user} ({'LLM' if client else 'rules'})")
            if client:
                examples += llm_queries(store, user, per_user, client, seed, on_error=status)
            else:
                examples += rule_queries(store, user, per_user, seed)
        return examples
    finally:
        store.close()


def load_labels(store_path: str | Path, labels: str | Path) -> list[Example]:
    from memlane.store import open_store

    store = open_store(store_path, create=False)
    try:
        return resolve_labels(labels, store)
    finally:
        store.close()


def drop_held_out(examples: list[Example], held_out: list[Example]) -> tuple[list[Example], int]:
    """Training examples minus any whose question is also a held-out one (same user, same words)."""
    keys = {e.key for e in held_out}
    kept = [e for e in examples if e.key not in keys]
    return kept, len(examples) - len(kept)


def record_checkpoint(config_path: str | Path, checkpoint: str) -> None:
    """Set [fine_tune] enabled = true and checkpoint_path in a TOML config file, keeping the rest as written."""
    path = Path(config_path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines()
    section = ["[fine_tune]", "enabled = true", f"checkpoint_path = {json.dumps(checkpoint)}"]
    out, inside, kept_settings = [], False, []
    for line in lines:
        header = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if header:
            inside = header.group(1).strip() == "fine_tune"
            if inside:
                continue
        if inside:
            if not re.match(r"^\s*(enabled|checkpoint_path)\s*=", line):
                kept_settings.append(line)
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    block = section + [s for s in kept_settings if s.strip()]
    new_text = "\n".join(out + ([""] if out else []) + block) + "\n"
    MemoryConfig.load_text(new_text, source=str(path))  # never write a config that does not load
    write_text_atomic(path, new_text)


def retrain(store_path: str | Path, config: MemoryConfig, out_dir: str | Path, *, eval_queries: str | Path,
            labels: str | Path | None = None, synthetic: bool = False, users: list[str] | None = None,
            eval_store: str | Path | None = None, min_gain: float | None = None,
            config_path: str | Path | None = None, status: Status = lambda _: None,
            progress: Callable[[str], Callable[[int, int], None]] | None = None,
            on_step: Callable[[int, int, float], None] | None = None,
            on_stage: Callable[[str], None] | None = None) -> RetrainResult:
    """Run (or resume) the whole fine-tuning pipeline; see the module docstring for its files.
    `on_stage` is told each stage as it starts: examples, mining, training, gate (a resumed run
    skips the finished ones)."""
    if (labels is None) == (not synthetic):
        raise InputError("give exactly one source of training queries", field="labels",
                         fix="pass --labels FILE (question -> memory pairs) or --synthetic")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, {
        "store": str(Path(store_path).resolve()), "labels": _digest(labels) if labels else None,
        "synthetic": synthetic, "users": users, "eval_queries": _digest(eval_queries),
        "eval_store": str(Path(eval_store).resolve()) if eval_store else None,
        "embedder": config.active_embedder().model, "fine_tune": config.fine_tune.model_dump(exclude={"enabled", "checkpoint_path"}),
    })
    held_out = load_labels(eval_store or store_path, eval_queries)
    if not (out / "gate.json").exists():
        check_gate_inputs(eval_store or store_path, held_out, config.active_embedder())
    progress = progress or (lambda _: None)  # type: ignore[assignment]
    stage = on_stage or (lambda _: None)

    examples_file = out / "examples.jsonl"
    if not examples_file.exists():
        stage("examples")
        status("stage 1/4: training queries")
        found = load_labels(store_path, labels) if labels else synthesize(store_path, config, users, status)
        write_examples(examples_file, found)
    examples, dropped = drop_held_out(read_examples(examples_file), held_out)

    mined_file = out / "mined.jsonl"
    if not mined_file.exists():
        stage("mining")
        status(f"stage 2/4: mining hard negatives for {len(examples)} queries")
        write_examples(mined_file, mine(str(store_path), examples, config, on_progress=progress("mining")))
    mined = read_examples(mined_file)

    candidate = out / "train" / "model"
    report = None
    if not (out / "gate.json").exists():
        if not candidate.exists():
            stage("training")
            status(f"stage 3/4: training on {len(mined)} examples")
            report = train(mined, config.active_embedder(), config.fine_tune, out / "train", on_step=on_step)
        stage("gate")
        status("stage 4/4: eval gate")
        verdict = gate(eval_store or store_path, held_out, config, candidate, out, min_gain=min_gain,
                       status=status, on_progress=progress("gate"))
        if verdict.passed and config_path is not None:
            record_checkpoint(config_path, verdict.checkpoint)
    else:
        status("all stages done; showing the recorded verdict")
    saved = json.loads((out / "gate.json").read_text(encoding="utf-8"))
    saved.pop("per_query", None)
    return RetrainResult(len(examples), dropped, report, GateReport(**saved))


def _digest(path: str | Path | None) -> str:
    if path is None:
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise InputError("file does not exist", file=str(path), fix="check the path") from None


def _check_manifest(out: Path, inputs: dict) -> None:
    manifest = out / "retrain.json"
    if manifest.exists():
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        if recorded != json.loads(json.dumps(inputs)):
            changed = sorted(k for k in inputs if recorded.get(k) != json.loads(json.dumps(inputs)).get(k))
            raise InputError(
                f"{out} holds a run with other inputs (changed: {', '.join(changed)})", field="out",
                fix="use a new --out folder, or delete the old one to start again",
            )
        return
    manifest.write_text(json.dumps(inputs, indent=2), encoding="utf-8")
