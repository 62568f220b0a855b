"""One exception tree for memlane; every message says what went wrong and how to fix it."""

from __future__ import annotations

from typing import Any


class MemlaneError(Exception):
    """Root of every error memlane raises on purpose."""


class ConfigError(MemlaneError):
    """The configuration is invalid (an unknown field, a bad value, a missing model)."""


class InputError(MemlaneError):
    """Input data is malformed. Names the file, the record and the field where known."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        record: str | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.record = record
        self.field = field
        self.fix = fix
        where = [part for part in (file, f"record {record}" if record else None,
                                   f"field '{field}'" if field else None) if part]
        message = (": ".join([", ".join(where), problem]) if where else problem)
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


class ModelMismatchError(MemlaneError):
    """The store was built with another embedding model than the one configured."""

    def __init__(self, store_model: str, store_dims: int, wanted_model: str, wanted_dims: int | None) -> None:
        self.store_model = store_model
        self.store_dims = store_dims
        self.wanted_model = wanted_model
        self.wanted_dims = wanted_dims
        dims = f", {wanted_dims} dims" if wanted_dims is not None else ""
        super().__init__(
            f"this store's vectors come from '{store_model}' ({store_dims} dims) but the configured "
            f"embedder is '{wanted_model}'{dims}; vectors of two models cannot be mixed. Either configure "
            f"'{store_model}' again, or rebuild the index with: memlane reindex --model {wanted_model}"
        )


class StoreError(MemlaneError):
    """The store could not be read or written (a locked, corrupt or missing file)."""


class NotFoundError(StoreError):
    """No memory with this id exists for this user."""


class AccessError(MemlaneError):
    """An API key is missing, unknown or revoked, or does not reach what the request names."""


class RateLimitError(MemlaneError):
    """Too many requests for this API key; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class LLMError(MemlaneError):
    """An LLM or embedding endpoint failed or answered something unusable."""


def describe(value: Any) -> str:
    """A value's type and a short, printable view of it, for error messages."""
    try:
        shown = repr(value)  # repr escapes what cannot be printed (lone surrogates included)
    except ValueError:  # an int too long to print
        shown = "..."
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{type(value).__name__} {shown}"
