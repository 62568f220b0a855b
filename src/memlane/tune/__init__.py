"""Eval-gated domain fine-tuning of the embedder, one module per stage.

examples.py  (query, positives[, negatives]) JSONL and label resolution against a store
labels.py    labeled queries from LoCoMo and LongMemEval
synth.py     synthetic queries, by an LLM or by documented rules (turns, and chunks via doc_synth.py)
doc_synth.py synthetic questions for document chunks: headings, normative sentences, key phrases, or an LLM
mine.py      hard negatives from the current retriever, with a false-negative margin
train.py     contrastive (InfoNCE) training with in-batch and hard negatives, resumable
gate.py      before/after on held-out queries; only a better checkpoint is kept
pipeline.py  `memlane retrain`: all of the above, stage by stage
"""
