"""Benchmarks: speed now; LoCoMo and LongMemEval retrieval quality build on the same pieces."""
