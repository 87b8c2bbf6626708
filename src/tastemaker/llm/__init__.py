"""Language models behind one chat interface: local transformers models or an HTTP server.

Importing this package is cheap: transformers and httpx load only when a model
first generates.
"""

from tastemaker.llm.base import LLM, ChatMessage, LLMConfig, create_llm

__all__ = ["LLM", "ChatMessage", "LLMConfig", "create_llm"]
