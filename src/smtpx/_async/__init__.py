"""The asyncio front end: ``AsyncSMTP``, ``AsyncSMTP_SSL`` and ``AsyncLMTP``."""

from ._client import AsyncSMTP
from ._variants import AsyncLMTP, AsyncSMTP_SSL

__all__ = ["AsyncLMTP", "AsyncSMTP", "AsyncSMTP_SSL"]
