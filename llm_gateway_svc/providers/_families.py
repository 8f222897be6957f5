"""Which LangChain integration serves which provider family, and how to build it.

The table names each family's chat model class (and embeddings class, where the
gateway supports one), the optional extra that installs it, and the constructor
keywords it uses for the base URL, the key and extra headers. Integrations are
imported only when a configured provider uses them, so the base install needs none.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llm_gateway_svc.config import ConfigError, ProviderSettings

__all__ = [
    "FAMILIES",
    "Family",
    "build_chat_model",
    "build_embeddings",
    "check_installed",
    "load_class",
    "wants_http_client",
]


@dataclass(frozen=True)
class Family:
    chat_class: str
    extra: str
    embeddings_class: str = ""
    base_url_kw: str = "base_url"
    api_key_kw: str = "api_key"
    headers_kw: str = "default_headers"
    # Keyword arguments every model of the family gets (before the user's options).
    defaults: tuple[tuple[str, Any], ...] = ()
    # Sent as the key when none is configured (local OpenAI-compatible servers need
    # none, but the SDK refuses to start without one).
    no_key: str = ""
    # Keyword for an httpx.AsyncClient the gateway owns (pool size, closing, one event loop).
    http_client_kw: str = ""


# The gateway retries, falls back and times out itself: SDK-level retries are off.
_NO_RETRY = (("max_retries", 0),)

FAMILIES: Mapping[str, Family] = {
    "openai": Family(
        "langchain_openai:ChatOpenAI",
        "providers-openai",
        embeddings_class="langchain_openai:OpenAIEmbeddings",
        defaults=(*_NO_RETRY, ("stream_usage", True)),
        no_key="no-key",
        http_client_kw="http_async_client",
    ),
    "azure_openai": Family(
        "langchain_openai:AzureChatOpenAI",
        "providers-openai",
        embeddings_class="langchain_openai:AzureOpenAIEmbeddings",
        base_url_kw="azure_endpoint",
        defaults=(*_NO_RETRY, ("stream_usage", True)),
        http_client_kw="http_async_client",
    ),
    "anthropic": Family(
        "langchain_anthropic:ChatAnthropic", "providers-anthropic", defaults=_NO_RETRY
    ),
    "bedrock_converse": Family(
        "langchain_aws:ChatBedrockConverse",
        "providers-aws",
        base_url_kw="endpoint_url",
        api_key_kw="",
        headers_kw="",
    ),
    "google_genai": Family(
        "langchain_google_genai:ChatGoogleGenerativeAI",
        "providers-google",
        base_url_kw="",
        api_key_kw="google_api_key",
        headers_kw="",
        defaults=(("max_retries", 0),),
    ),
    "mistralai": Family(
        "langchain_mistralai:ChatMistralAI",
        "providers-mistral",
        base_url_kw="endpoint",
        headers_kw="",
        defaults=_NO_RETRY,
    ),
    "ollama": Family(
        "langchain_ollama:ChatOllama", "providers-ollama", api_key_kw="", headers_kw=""
    ),
}


def load_class(path: str, extra: str = "") -> Any:
    """``module:Class`` -> the class; a missing package names the extra that installs it."""
    module, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        hint = f" (pip install 'langgraph-mesh[{extra}]')" if extra else ""
        raise ConfigError(f"{path} is not installed{hint}: {exc.name}") from None
    except AttributeError:
        raise ConfigError(f"{path}: no such class") from None


def check_installed(provider: str, family: str, chat_class: str) -> None:
    """ConfigError now (not at the first call) if the integration is not installed."""
    if chat_class:
        path, extra = chat_class, ""
    elif family in FAMILIES:
        path, extra = FAMILIES[family].chat_class, FAMILIES[family].extra
    else:
        raise ConfigError(
            f"provider {provider!r}: unknown family {family!r}"
            f" (one of {sorted(FAMILIES)}, or set chat_class)"
        )
    module = path.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        hint = f": pip install 'langgraph-mesh[{extra}]'" if extra else ""
        raise ConfigError(f"provider {provider!r} needs {module}, which is not installed{hint}")


def _family(settings: ProviderSettings) -> Family:
    if settings.chat_class:
        return Family(settings.chat_class, "")
    fam = FAMILIES.get(settings.family)
    if fam is None:
        raise ConfigError(
            f"provider {settings.name!r}: unknown family {settings.family!r}"
            f" (one of {sorted(FAMILIES)}, or set chat_class)"
        )
    return fam


def _kwargs(
    settings: ProviderSettings, fam: Family, model: str, http_client: Any
) -> dict[str, Any]:
    kw: dict[str, Any] = {"model": model, "timeout": settings.timeout_s, **dict(fam.defaults)}
    if http_client is not None and fam.http_client_kw:
        kw[fam.http_client_kw] = http_client
    if settings.base_url and fam.base_url_kw:
        kw[fam.base_url_kw] = settings.base_url
    if fam.api_key_kw and (settings.api_key or fam.no_key):
        kw[fam.api_key_kw] = settings.api_key or fam.no_key
    if settings.headers and fam.headers_kw:
        kw[fam.headers_kw] = dict(settings.headers)
    kw.update(settings.options)
    return kw


def wants_http_client(settings: ProviderSettings) -> bool:
    return bool(_family(settings).http_client_kw)


def build_chat_model(settings: ProviderSettings, model: str, http_client: Any = None) -> Any:
    """The integration's chat model for ``model`` (a LangChain ``BaseChatModel``)."""
    fam = _family(settings)
    cls = load_class(fam.chat_class, fam.extra)
    try:
        return cls(**_kwargs(settings, fam, model, http_client))
    except (TypeError, ValueError) as exc:
        # Pydantic validation errors are ValueErrors; their text names fields, not values.
        raise ConfigError(
            f"provider {settings.name!r}: cannot build {fam.chat_class}: {exc}"
        ) from None


def build_embeddings(settings: ProviderSettings, model: str, http_client: Any = None) -> Any | None:
    """The integration's embeddings model for ``model``, or None if the family has none."""
    fam = _family(settings)
    if not fam.embeddings_class:
        return None
    cls = load_class(fam.embeddings_class, fam.extra)
    kw = _kwargs(settings, fam, model, http_client)
    kw.pop("stream_usage", None)
    if settings.dimensions:
        kw["dimensions"] = settings.dimensions
    # The gateway batches itself; tiktoken-based splitting would download encodings.
    kw.setdefault("check_embedding_ctx_length", False)
    kw.setdefault("chunk_size", settings.embed_batch_size)
    try:
        return cls(**kw)
    except Exception as exc:
        raise _build_error(settings, fam.embeddings_class, exc) from None


def _build_error(settings: ProviderSettings, what: str, exc: Exception) -> ConfigError:
    from llm_gateway_svc.providers._errors import mask

    text = mask(str(exc), (settings.api_key,))
    return ConfigError(f"provider {settings.name!r}: cannot build {what}: {text}")
