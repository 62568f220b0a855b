"""user_id is a hard partition: no path of one user ever touches another's memories."""

import pytest

from memlane import Memory, NotFoundError
from memlane.embed import HashEmbedder


@pytest.fixture(params=["exact", "approximate"])
def memory(request, tmp_path, config):
    """Every test here runs twice: users scanned exactly, and every user's dense candidates drawn
    from their own approximate index (the threshold forced to one memory)."""
    if request.param == "approximate":
        config.store.dense_exact_below = 1
    m = Memory(tmp_path / "store.db", config, embedder=HashEmbedder(dims=256))
    yield m
    m.close()

ANA = [
    {"role": "user", "content": "My secret project is called Bluebird and my email is ana@example.com."},
    {"role": "user", "content": "I adopted a beagle named Biscuit."},
]
BO = [
    {"role": "user", "content": "My secret project is called Redwing and my email is bo@example.com."},
    {"role": "user", "content": "I adopted a beagle named Pepper."},
]


@pytest.fixture
def two_users(memory):
    ana = memory.add(ANA, user_id="ana", session_date="2023-05-08")
    bo = memory.add(BO, user_id="bo", session_date="2023-05-08")
    return memory, ana, bo


@pytest.mark.parametrize("query", [
    "secret project", "beagle", "Redwing", "bo@example.com", "Pepper", '"Redwing"',
])
def test_search_never_returns_another_users_memories(two_users, query):
    memory, ana, bo = two_users
    hits = memory.search(query, user_id="ana", limit=20, explain=True)
    assert hits, "ana has matching memories of her own"
    assert all(h.record.user_id == "ana" for h in hits)
    assert not any("Redwing" in h.text or "Pepper" in h.text for h in hits)


def test_search_by_another_users_memory_id_finds_nothing(two_users):
    memory, ana, bo = two_users
    hits = memory.search(bo[0].id, user_id="ana", limit=20)
    assert all(h.record.user_id == "ana" for h in hits)


def test_get_and_history_with_a_user_only_see_that_user(two_users):
    memory, ana, bo = two_users
    assert memory.get(bo[0].id, user_id="ana") is None
    assert memory.get(bo[0].id, user_id="bo").text == bo[0].text
    assert memory.history(bo[0].id, user_id="ana") == []


def test_update_and_delete_of_another_users_memory_are_refused(two_users):
    memory, ana, bo = two_users
    with pytest.raises(NotFoundError):
        memory.update(bo[0].id, "hijacked", user_id="ana")
    with pytest.raises(NotFoundError):
        memory.delete(bo[0].id, user_id="ana")
    assert memory.get(bo[0].id, user_id="bo").text == bo[0].text


def test_delete_all_removes_only_that_user(two_users):
    memory, ana, bo = two_users
    assert memory.delete_all("ana") == len(ana)
    assert memory.get_all("ana").records == []
    assert len(memory.get_all("bo").records) == len(bo)
    assert memory.search("beagle", user_id="bo", limit=1)[0].record.user_id == "bo"


def test_get_all_lists_only_that_user(two_users):
    memory, ana, bo = two_users
    assert {r.user_id for r in memory.get_all("ana").records} == {"ana"}


def test_another_users_memories_never_move_a_users_scores(tmp_path, config):
    """Lexical statistics (document frequencies, lengths) are per user: what one tenant stores
    cannot be read off another tenant's scores."""
    from memlane import Memory
    from memlane.embed import HashEmbedder

    def explained(with_bo):
        memory = Memory(tmp_path / f"{with_bo}.db", config, embedder=HashEmbedder(dims=256))
        memory.add(ANA, user_id="ana", session_date="2023-05-08")
        if with_bo:  # bo talks of beagles all the time: a common word in the file, not for ana
            memory.add([{"role": "user", "content": f"My beagle number {i} barks."} for i in range(30)],
                       user_id="bo", session_date="2023-05-08")
        hits = memory.search("beagle Biscuit", user_id="ana", limit=5, explain=True)
        memory.close()
        return [(h.id, h.score, [(s.strategy, s.rank, s.score) for s in h.explanation.strategies]) for h in hits]

    alone, shared = explained(False), explained(True)
    assert any(s[0] == "bm25" for _, _, strategies in alone for s in strategies)
    assert [(score, strategies) for _, score, strategies in alone] == \
        [(score, strategies) for _, score, strategies in shared]
