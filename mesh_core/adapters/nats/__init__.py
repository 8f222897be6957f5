"""NATS adapters: subject names, connection helpers, the run event log, the task queue."""

from mesh_core.adapters.nats.subjects import NatsNames

__all__ = ["NatsNames"]
