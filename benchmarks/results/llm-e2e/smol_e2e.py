import sys, time, tempfile
from pathlib import Path
from memlane import Memory, MemoryConfig
from memlane.ingest.formats import load_conversations
cfg = MemoryConfig.load("benchmarks/results/llm-e2e/smol.toml")
conv = load_conversations("/work/shared/data/locomo/26.json")[0]
with tempfile.TemporaryDirectory() as tmp:
    m = Memory(Path(tmp) / "e2e.db", cfg)
    t = time.time()
    report = m.ingest(conv.sessions[:3], user_id="26")
    print(f"ingest: {report.turns} turns, {report.extracted} extracted memories, {len(report.failures)} failures, {time.time()-t:.0f} s")
    for f in report.failures[:8]:
        print("  failure:", f.node, f.error[:160])
    for node in [s.name for s in m.nodes()]:
        recs = m.get_all("26", filters={"node_type": node}).records
        print(f"{node}: {len(recs)}")
        for r in recs[:3]:
            print("   ", r.text[:150], "| evidence", r.metadata.get("evidence_turn_ids"))
    hits = m.search("When did Caroline go to the LGBTQ support group?", user_id="26", limit=5, explain=True, now="2023-06-30")
    for h in hits:
        print(f"  [{h.explanation.node}] {h.text[:120]}")
    print(hits[0].explanation.notes[:1])
    m.close()
