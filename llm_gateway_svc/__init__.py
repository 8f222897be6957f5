"""The mesh's LLM gateway: providers, retries, fallbacks, rate limits, spend, caching.

Public API::

    from llm_gateway_svc import LlmGatewaySettings, LlmGatewayServer, serve
"""

from llm_gateway_svc.config import ConfigError, LlmGatewaySettings
from llm_gateway_svc.server import LlmGatewayServer, serve
from llm_gateway_svc.servicer import SERVICE_NAME, TENANT_METADATA_KEY

__all__ = [
    "SERVICE_NAME",
    "TENANT_METADATA_KEY",
    "ConfigError",
    "LlmGatewayServer",
    "LlmGatewaySettings",
    "serve",
]
