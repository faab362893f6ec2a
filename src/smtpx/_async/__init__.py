"""The asyncio front end: ``AsyncSMTP``, ``AsyncSMTP_SSL`` and ``AsyncLMTP``."""

from ._client import AsyncLMTP, AsyncSMTP, AsyncSMTP_SSL

__all__ = ["AsyncLMTP", "AsyncSMTP", "AsyncSMTP_SSL"]
