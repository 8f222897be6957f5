"""Provider adapters: OpenAI-compatible Chat Completions over HTTP, and a scripted one."""

from __future__ import annotations

from llm_gateway_svc.config import ProviderSettings
from llm_gateway_svc.providers.base import Provider, ProviderError
from llm_gateway_svc.providers.openai import OpenAIProvider
from llm_gateway_svc.providers.scripted import ScriptedProvider

__all__ = ["OpenAIProvider", "Provider", "ProviderError", "ScriptedProvider", "build_provider"]


def build_provider(settings: ProviderSettings) -> Provider:
    if settings.type == "openai":
        return OpenAIProvider(settings)
    if settings.type == "scripted":
        return ScriptedProvider(settings)
    raise ValueError(f"unknown provider type {settings.type!r}")
