"""memlane: long-term memory for LLM agents and chat assistants."""
