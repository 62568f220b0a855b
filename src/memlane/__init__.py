"""memlane: long-term memory for LLM agents and chat assistants.

    from memlane import Memory
    memory = Memory("memories.db")
    memory.add([{"role": "user", "content": "I adopted a beagle yesterday"}], user_id="ana")
    hits = memory.search("What pet does Ana have?", user_id="ana", explain=True)

`Client("http://127.0.0.1:8765", api_key=...)` has the same methods against a memlane server.
"""

from memlane.client import Client
from memlane.config import EmbedderConfig, IngestConfig, MemoryConfig, RetrievalConfig
from memlane.documents.model import DocumentReport
from memlane.errors import (
    AccessError,
    ConfigError,
    InputError,
    LLMError,
    MemlaneError,
    ModelMismatchError,
    NotFoundError,
    RateLimitError,
    StoreError,
)
from memlane.filters import Filter
from memlane.memory import IngestReport, Memory, Page, ReindexReport, reindex
from memlane.nodes.spec import NodeSpec
from memlane.records import (
    Category,
    EventDate,
    Explanation,
    HistoryEvent,
    Hit,
    MemoryRecord,
    NodeType,
    Session,
    StrategyHit,
    Turn,
)

__version__ = "0.1.0"

__all__ = [
    "AccessError",
    "Category",
    "Client",
    "ConfigError",
    "DocumentReport",
    "EmbedderConfig",
    "EventDate",
    "Explanation",
    "Filter",
    "HistoryEvent",
    "Hit",
    "IngestConfig",
    "IngestReport",
    "InputError",
    "LLMError",
    "MemlaneError",
    "Memory",
    "MemoryConfig",
    "MemoryRecord",
    "ModelMismatchError",
    "NodeSpec",
    "NodeType",
    "NotFoundError",
    "Page",
    "RateLimitError",
    "ReindexReport",
    "RetrievalConfig",
    "Session",
    "StoreError",
    "StrategyHit",
    "Turn",
    "__version__",
    "reindex",
]
