"""Report rendering."""

from memlane.bench.report import _label


def test_a_category_named_by_its_key_is_not_written_twice():
    assert _label("1", {"name": "multi-hop"}) == "1 multi-hop"
    assert _label("temporal-reasoning", {"name": "temporal-reasoning"}) == "temporal-reasoning"
