"""Logging: one line per event, readable by default, JSON lines with `--log-format json`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class ReadableFormatter(logging.Formatter):
    """`2025-02-19 08:00:01 INFO build: wrote 3 files (files=3)` – extras as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        text = f"{stamp} {record.levelname} {record.name.removeprefix('publisher.')}: {record.getMessage()}"
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            text += " (" + " ".join(f"{k}={v}" for k, v in extras.items()) + ")"
        if record.exc_info and record.levelno >= logging.ERROR and logging.getLogger().level <= logging.DEBUG:
            text += "\n" + self.formatException(record.exc_info)
        return " ".join(text.splitlines()) if not record.exc_info else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                data[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            data["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(data, ensure_ascii=False, default=str)


def setup(verbosity: int = 0, fmt: Literal["text", "json"] = "text") -> None:
    """Configure the root logger on stderr. verbosity: -1 quiet, 0 normal, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ReadableFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party libraries speak only when asked to be verbose.
    for name in ("apscheduler", "watchfiles", "hypercorn", "mail.log", "asyncio", "markdown_it"):
        logging.getLogger(name).setLevel(logging.WARNING if verbosity < 2 else logging.DEBUG)
