"""User-defined memory nodes: definitions as data, LLM extraction, routing, and their lifecycle.

spec.py       NodeSpec (validated), templates, loading YAML/JSON, the default topology
extract.py    prompts, validation of LLM answers, extracted records
router.py     which nodes a question searches
lifecycle.py  knowledge updates (supersession), consolidation, retention
"""

from memlane.nodes.spec import NodeSpec, default_topology, load_specs, parse_spec

__all__ = ["NodeSpec", "default_topology", "load_specs", "parse_spec"]
