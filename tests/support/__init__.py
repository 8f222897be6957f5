"""Test helpers kept out of the product: stand-ins for external systems the tests cannot
run for real (an OTLP collector), the OpenAI-compatible stub server, an in-memory LLM
store, and launchers for gateway processes."""
