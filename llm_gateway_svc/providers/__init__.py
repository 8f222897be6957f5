"""Provider adapters: LangChain chat model integrations, and a scripted one for demos/tests."""

from __future__ import annotations

from llm_gateway_svc.config import ProviderSettings
from llm_gateway_svc.providers.base import Provider, ProviderError
from llm_gateway_svc.providers.langchain import LangChainProvider
from llm_gateway_svc.providers.scripted import ScriptedProvider

__all__ = ["LangChainProvider", "Provider", "ProviderError", "ScriptedProvider", "build_provider"]


def build_provider(settings: ProviderSettings) -> Provider:
    if settings.type == "langchain":
        return LangChainProvider(settings)
    if settings.type == "scripted":
        return ScriptedProvider(settings)
    raise ValueError(f"unknown provider type {settings.type!r}")
