"""Every NATS subject and JetStream stream/consumer name the mesh uses, in one place.

Everything is namespaced by the mesh prefix so several meshes (and parallel test
runs) share one NATS server. Stream names may not contain '.', so they use '_'.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NatsNames"]


@dataclass(frozen=True)
class NatsNames:
    prefix: str

    @property
    def _p(self) -> str:
        return self.prefix.replace(".", "_")

    # -- run event log (one subject per run, replayable from a cursor) -------------------
    @property
    def events_stream(self) -> str:
        return f"{self._p}_EVENTS"

    @property
    def events_wildcard(self) -> str:
        return f"{self._p}.events.>"

    def run_events(self, run_id: str) -> str:
        return f"{self._p}.events.{run_id}"

    # -- cancel broadcast ----------------------------------------------------------------
    def run_cancel(self, run_id: str) -> str:
        return f"{self._p}.cancel.{run_id}"

    @property
    def cancel_wildcard(self) -> str:
        return f"{self._p}.cancel.*"

    # -- remote task work queue (Send fan-out) -------------------------------------------
    @property
    def tasks_stream(self) -> str:
        return f"{self._p}_TASKS"

    @property
    def tasks_subject(self) -> str:
        return f"{self._p}.tasks.run"

    @property
    def tasks_consumer(self) -> str:
        return f"{self._p}_workers"

    @property
    def dead_letter_subject(self) -> str:
        return f"{self._p}.tasks.dead"

    def task_reply(self, owner_id: str) -> str:
        """Where workers send task results for one owner process."""
        return f"{self._p}.taskreply.{owner_id}"

    @property
    def dead_letter_stream(self) -> str:
        """Keeps dead-lettered tasks (limits retention) so an operator can inspect them."""
        return f"{self._p}_TASKS_DEAD"

    def task_cancel(self, invocation_id: str) -> str:
        """Owner -> every worker: stop the tasks of one run invocation (core NATS)."""
        return f"{self._p}.taskcancel.{invocation_id}"

    @property
    def task_cancel_wildcard(self) -> str:
        return f"{self._p}.taskcancel.*"
