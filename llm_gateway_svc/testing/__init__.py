"""Test and benchmark helpers: the OpenAI-compatible stub server and process launchers."""

from llm_gateway_svc.testing._process import ServiceProcess, start_gateway, start_openai_stub

__all__ = ["ServiceProcess", "start_gateway", "start_openai_stub"]
