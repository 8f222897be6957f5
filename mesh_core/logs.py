"""One log format for every service: readable text by default, JSON lines for production.

Text::

    21:04:05.123 INFO  gateway lgmesh.gateway: ready on 127.0.0.1:50051

JSON (``--log-format json``): one object per line with ``time`` (RFC 3339, UTC),
``level``, ``service``, ``logger``, ``message`` and, for errors, ``exc_type``.
Tracebacks go to the log only at DEBUG level or for genuine bugs (``log.exception``);
expected failures are one line.

:class:`RateLimitedLog` keeps a flood of identical warnings (a client sending garbage,
a backend that is down) to a few lines per interval, with a count of what it dropped.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["LOG_FORMATS", "RateLimitedLog", "setup_logging"]

LOG_FORMATS = ("text", "json")


class _TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        stamp = time.strftime("%H:%M:%S", t) + f".{int(record.msecs):03d}"
        head = f"{stamp} {record.levelname:<5} {self.service} {record.name}: "
        text = head + record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(
    service: str, level: str = "INFO", fmt: str = "text", stream: TextIO | None = None
) -> None:
    """Configure the root logger for a service process (replaces earlier handlers)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_JsonFormatter(service) if fmt == "json" else _TextFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    # Libraries that log a line per reconnect attempt or per request at INFO.
    for noisy in ("aetcd", "nats", "httpx", "httpcore", "grpc"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))


class RateLimitedLog:
    """Log at most ``burst`` lines per ``interval`` seconds per key; count the rest."""

    def __init__(self, logger: logging.Logger, *, interval: float = 10.0, burst: int = 3) -> None:
        self.logger = logger
        self.interval = interval
        self.burst = burst
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log unless ``key`` already logged ``burst`` lines this interval. True if logged."""
        now = time.monotonic()
        with self._lock:
            start, count, dropped = self._windows.get(key, (now, 0, 0))
            if now - start >= self.interval:
                if dropped:
                    self.logger.log(
                        level, "(%d more like %r in the last %.0fs)", dropped, key, now - start
                    )
                start, count, dropped = now, 0, 0
            if count >= self.burst:
                self._windows[key] = (start, count, dropped + 1)
                return False
            self._windows[key] = (start, count + 1, dropped)
            if len(self._windows) > 1024:  # keys are few in practice; never grow unbounded
                self._windows.pop(next(iter(self._windows)))
        self.logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)
