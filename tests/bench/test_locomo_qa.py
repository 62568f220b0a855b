"""Answer-level LoCoMo evaluation: offline answer recall, and the LLM path against a scripted server."""


import pytest

from memlane import MemoryConfig
from memlane.bench.locomo import load_locomo
from memlane.bench.locomo_qa import judge, run_locomo_qa
from memlane.bench.metrics import answer_token_recall, bleu1, contains_answer, says_no_answer, token_f1
from memlane.bench.report import write_report

from _support import DATA


def test_token_f1_and_bleu1_by_hand():
    # pred tokens [7, may, 2023], gold [7, may]: P = 2/3, R = 1 -> F1 = 0.8
    assert token_f1("7 May, 2023", "7 May") == pytest.approx(0.8)
    assert token_f1("The beach", "beach") == 1.0 and token_f1("mountains", "beach") == 0.0
    # pred [beach] vs gold [sunset, beach]: precision 1, brevity exp(1 - 2/1) = e^-1
    assert bleu1("beach", "sunset beach") == pytest.approx(0.36788, abs=1e-4)


def test_answer_recall_counts_the_gold_content_tokens_in_context():
    assert answer_token_recall("Psychology, counseling certification", "she wants a counseling job in psychology") == pytest.approx(2 / 3)
    assert answer_token_recall("7 May 2023", "on 7 May") == pytest.approx(2 / 3)
    assert answer_token_recall("7 May 2023", "[2023-05-08] on 7 May") == 1.0  # the date prefix holds 2023


def test_the_fast_judge_pass():
    assert contains_answer("She went on 7 May 2023.", "7 May 2023") and not contains_answer("May", "7 May 2023")
    assert says_no_answer("I don't know.") and not says_no_answer("Lisbon")
    assert judge("q", "Lisbon", "It was Lisbon", 1, client=None) == (True, "fast: gold answer contained")
    assert judge("q", "Lisbon", "I don't know", 2, client=None)[0] is False
    assert judge("q", "x", "Not mentioned in the conversation", 5, client=None)[0] is True


@pytest.fixture
def hash_config():
    config = MemoryConfig()
    config.embedder.provider = "hash"
    config.embedder.model = "hash-256"
    config.embedder.cache_path = "off"
    return config


def test_offline_mode_reports_answer_recall_per_category(hash_config, tmp_path):
    report = run_locomo_qa(load_locomo([DATA / "locomo" / "26.json"]), hash_config, limit=25)
    assert report["mode"].startswith("offline") and "judge" not in report
    assert set(report["answer_recall"]) == {"1", "5", "10", "20"}
    assert 0 <= report["answer_recall"]["1"] <= report["answer_recall"]["20"] <= 1
    assert len(report["per_question"]) == 25 and report["per_category"]
    text = write_report(report, tmp_path / "qa.json", "memlane bench locomo-qa")
    assert "answer_recall@10" in text and (tmp_path / "qa-recall.png").exists()


def test_llm_mode_answers_and_judges(hash_config, server):
    hash_config.llm.base_url, hash_config.llm.model = server.url, "scripted"
    hash_config.extraction.enabled = False

    def reply(body):
        prompt = body["messages"][-1]["content"]
        content = '{"correct": false}' if "Gold answer:" in prompt else "7 May 2023"
        return 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}

    server.play(*[reply] * 20)
    report = run_locomo_qa(load_locomo([DATA / "locomo" / "26.json"]), hash_config, limit=3)
    first = report["per_question"][0]
    assert first["answer"] == "7 May 2023" and first["gold"] == "7 May 2023"
    assert first["f1"] == 1.0 and first["judge"] == 1.0 and first["judged_by"].startswith("fast")
    assert {"f1", "bleu1", "judge"} <= set(report)
    judged = [q for q in report["per_question"] if q["judged_by"] == "llm"]
    assert all(q["judge"] == 0.0 for q in judged)
    assert any("Gold answer:" in r["body"]["messages"][-1]["content"] for r in server.requests) == bool(judged)
    assert "Memories:" in server.requests[0]["body"]["messages"][0]["content"]
