"""A client for any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM, llama.cpp server).

Retries timeouts, 429 and 5xx with exponential backoff (see `memlane._http`); every other
failure is an `LLMError` that names the server and what it said. `map` runs many prompts with at
most `concurrency` requests in flight and returns per-prompt results or errors, so one bad answer
never sinks a batch.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

from memlane._http import JSONPoster
from memlane.config import LLMConfig
from memlane.errors import ConfigError, LLMError

Messages = list[dict[str, str]]
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class LLMClient:
    """Chat completions against `config.base_url`/chat/completions."""

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not config.base_url:
            raise ConfigError("no LLM is configured. Fix: set llm.base_url (and llm.model) to an OpenAI-compatible server.")
        if not config.model:
            raise ConfigError("llm.base_url is set but llm.model is empty. Fix: set llm.model to a model the server serves.")
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._poster = JSONPoster(self.url, "LLM server", api_key=config.api_key, timeout_s=config.timeout_s,
                                  max_retries=config.max_retries, sleep=sleep)

    def complete(self, messages: Messages, *, json_output: bool = False) -> str:
        """The assistant's answer text for `messages`."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if json_output and self.config.json_mode:
            body["response_format"] = {"type": "json_object"}
        answer = self._poster.post(body)
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"LLM server {self.url} answered without choices[0].message.content: {str(answer)[:200]}") from None
        if not isinstance(content, str):
            raise LLMError(f"LLM server {self.url} answered a non-text message content: {str(content)[:200]}")
        return content

    def close(self) -> None:
        """Close the kept connections to the server (a later call opens new ones)."""
        self._poster.close()

    def complete_json(self, messages: Messages) -> Any:
        """The answer parsed as JSON (a ```json fence around it is tolerated)."""
        return parse_json_answer(self.complete(messages, json_output=True), self.url)

    def map(self, conversations: Sequence[Messages], *, json_output: bool = False) -> list[Any | LLMError]:
        """Answers for many prompts, in order, `concurrency` at a time; a failed one is its LLMError."""
        def one(messages: Messages) -> Any | LLMError:
            try:
                return self.complete_json(messages) if json_output else self.complete(messages)
            except LLMError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(one, conversations))


def parse_json_answer(text: str, source: str = "LLM") -> Any:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped)
    except ValueError:
        raise LLMError(f"{source} answered text that is not valid JSON: {text[:200]!r}") from None
