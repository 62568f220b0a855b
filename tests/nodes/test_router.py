from memlane.config import LLMConfig
from memlane.llm import LLMClient
from memlane.nodes.router import route_by_llm, route_by_rules
from memlane.nodes.spec import default_topology

SPECS = default_topology()


def test_rules_pick_nodes_by_their_keywords():
    route = route_by_rules("When did Caroline go to the support group?", SPECS)
    assert route.nodes == ["temporal_event"] and "when" in route.reason
    assert set(route_by_rules("Who is Mel's sister and what is her job?", SPECS).nodes) == {"project_career", "social_relation"}


def test_a_question_without_keywords_searches_every_node():
    assert len(route_by_rules("Tell me about Caroline", SPECS).nodes) == len(SPECS)


def test_the_llm_router_keeps_known_names_and_falls_back_to_rules(server):
    client = LLMClient(LLMConfig(base_url=server.url, model="m", max_retries=0))
    server.play(server.chat('{"nodes": ["social_relation", "no_such_node"]}'), server.fail(400, "bad"))
    assert route_by_llm("Who are Ana's friends?", SPECS, client).nodes == ["social_relation"]
    fallback = route_by_llm("When did Ana move?", SPECS, client)
    assert fallback.nodes == ["temporal_event"] and "rules decided" in fallback.notes[0]
