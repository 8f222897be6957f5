"""The JetStream task queue: settings, stream and consumer setup."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from mesh_core.adapters.nats import NatsNames

__all__ = ["DEFAULT_ACK_WAIT", "DEFAULT_MAX_DELIVERIES", "TaskQueueSettings", "ensure_task_queue"]

DEFAULT_ACK_WAIT = 5.0
DEFAULT_HEARTBEAT = 1.0
DEFAULT_MAX_DELIVERIES = 3


@dataclass(frozen=True)
class TaskQueueSettings:
    """How the remote task queue behaves. Owners and workers of one mesh share these.

    Attributes:
        ack_wait: seconds a delivered task may go without an ack or in-progress ack
            before JetStream redelivers it (a SIGKILLed worker is noticed after this).
        max_deliveries: deliveries that may run the task; the delivery after the last
            one dead-letters it and reports the failure to the owner.
        duplicate_window: JetStream de-duplication window for ``Nats-Msg-Id``.
        fetch_batch: most messages a worker fetches at once (also bounded by free slots).
        checkpoint_wait: seconds an owner waits for the checkpoint a task was derived
            from to be readable before it publishes the task.
        dead_letter_max_age: seconds the dead-letter stream keeps a task.
    """

    ack_wait: float = DEFAULT_ACK_WAIT
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    duplicate_window: float = 120.0
    fetch_batch: int = 16
    checkpoint_wait: float = 30.0
    dead_letter_max_age: float = 7 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.ack_wait <= 0:
            raise ValueError("ack_wait must be > 0")
        if self.max_deliveries < 1:
            raise ValueError("max_deliveries must be >= 1")
        if self.fetch_batch < 1:
            raise ValueError("fetch_batch must be >= 1")

    @property
    def heartbeat_interval(self) -> float:
        """How often a worker sends an in-progress ack for a running task (about every
        second, and at least three times per ``ack_wait``)."""
        return max(0.05, min(DEFAULT_HEARTBEAT, self.ack_wait / 3))


async def ensure_task_queue(
    js: JetStreamContext, names: NatsNames, queue: TaskQueueSettings, *, create: bool = True
) -> None:
    """Owners (``create``) make, idempotently, the work-queue stream, the dead-letter
    stream and the workers' shared durable pull consumer. Workers only check that the
    consumer is there with their settings: a worker's NATS user may pull and ack tasks
    but not create or change streams and consumers (``NotFoundError`` until an owner
    made them)."""
    config = _consumer_config(names, queue)
    if not create:
        _check_consumer(await js.consumer_info(names.tasks_stream, names.tasks_consumer), config)
        return
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.tasks_stream,
            subjects=[names.tasks_subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=queue.duplicate_window,
        ),
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.dead_letter_stream,
            subjects=[names.dead_letter_subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=queue.dead_letter_max_age,
        ),
    )
    # nats-server would silently update a consumer created with other settings: check
    try:
        info = await js.consumer_info(names.tasks_stream, names.tasks_consumer)
    except NotFoundError:
        await js.add_consumer(names.tasks_stream, config=config)
        info = await js.consumer_info(names.tasks_stream, names.tasks_consumer)
    _check_consumer(info, config)


def _consumer_config(names: NatsNames, queue: TaskQueueSettings) -> ConsumerConfig:
    return ConsumerConfig(
        name=names.tasks_consumer,
        durable_name=names.tasks_consumer,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=queue.ack_wait,
        # one delivery more than may run the task: that one dead-letters it
        max_deliver=queue.max_deliveries + 1,
        filter_subject=names.tasks_subject,
        max_ack_pending=-1,
        max_waiting=4096,
    )


def _check_consumer(info: ConsumerInfo, config: ConsumerConfig) -> None:
    have = (info.config.ack_wait, info.config.max_deliver)
    want = (config.ack_wait, config.max_deliver)
    if have != want:
        raise ValueError(
            f"task consumer {config.durable_name} exists with (ack_wait, max_deliver)="
            f"{have}, this process wants {want}: every owner and worker of a mesh must use "
            "the same TaskQueueSettings (delete the consumer to change them)"
        )


async def _ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:
            # created concurrently by another process
            await js.stream_info(config.name)
