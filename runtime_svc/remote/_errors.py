"""Errors of remote task execution (part of the mesh's one exception tree)."""

from __future__ import annotations

from mesh_core.errors import InternalError

__all__ = ["RemoteTaskError", "TaskDeadLetteredError"]


class RemoteTaskError(InternalError):
    """A remote task failed and its own exception type can't be rebuilt on the owner,
    or the worker could not rebuild the task at all."""

    reason = "REMOTE_TASK_FAILED"

    def __init__(self, message: str, *, error_type: str = "", task_id: str = "") -> None:
        meta = {k: v for k, v in (("error_type", error_type), ("task_id", task_id)) if v}
        super().__init__(message, metadata=meta)
        self.error_type = error_type
        self.task_id = task_id


class TaskDeadLetteredError(RemoteTaskError):
    """A task used up its deliveries (its worker died or stalled every time)."""

    reason = "TASK_DEAD_LETTERED"
