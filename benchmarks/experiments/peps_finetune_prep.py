import json, random, tarfile, io
from pathlib import Path
from memlane import Memory, MemoryConfig
from memlane.bench.docs import load_queries
from memlane.store import scan
qs = load_queries("benchmarks/queries/peps-dev.jsonl") + load_queries("benchmarks/queries/peps-heldout.jsonl")
held = load_queries("benchmarks/queries/peps-heldout.jsonl")
src = tarfile.open("/work/shared/data/peps/peps-rst.tar.xz", "r:xz")
members = [m for m in src.getmembers() if m.isfile()]
relevant = {p for q in qs for p in q.relevant}
rng = random.Random(7)
others = [m.name for m in members if m.name not in relevant]
keep = relevant | set(rng.sample(others, 130))
with tarfile.open("/tmp/peps-subset.tar.gz", "w:gz") as out:
    for m in members:
        if m.name in keep:
            out.addfile(m, src.extractfile(m))
print("subset", len(keep))
cfg = MemoryConfig.load(Path("/tmp/pepcfg.toml"), env={})
mem = Memory("/tmp/ftstore.db", cfg)
r = mem.add_documents(["/tmp/peps-subset.tar.gz"], user_id="org")
print("chunks", r.chunks, "embedded", r.embedded, round(r.seconds, 1))
chunks = scan(mem._store, "org", {"node_type": "chunk"})
by_source = {}
for c in chunks: by_source.setdefault(c.metadata["source"], []).append(c.id)
with open("/tmp/ft-eval.jsonl", "w") as f:
    for q in held:
        ids = [i for p in q.relevant for i in by_source.get(p, [])]
        f.write(json.dumps({"query": q.query, "user_id": "org", "positive_ids": ids}) + "\n")
print("eval", len(held))
