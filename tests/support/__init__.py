"""Stand-ins for external systems that the tests cannot run for real (an OTLP collector)."""
