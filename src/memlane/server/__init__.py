"""memlane as a service: the REST server (`app`), its request and response schemas, API keys."""
