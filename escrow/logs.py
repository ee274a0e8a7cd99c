"""Logs as JSON lines (or a person's console) through structlog, for every logger of the process.

What may never reach a log: a token, a phone or ID number, a password or a request body. Log lines name
objects by id, requests by route template and path (never the query string), callers by principal.
`redact` is the last guard: any event key that names a secret is masked, whoever logged it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from escrow.settings import LogFormat, Settings

SECRET_KEYS = re.compile(r"token|secret|password|authorization|cookie|phone|id_number|body", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask the value of every key that names a secret (the request id and token *ids* are not secrets)."""
    for key in list(event):
        if SECRET_KEYS.search(key) and key not in ("token_id", "event"):
            event[key] = REDACTED
    return event


def _renderer(fmt: LogFormat) -> Any:
    if fmt is LogFormat.CONSOLE:
        return structlog.dev.ConsoleRenderer(colors=False)
    return structlog.processors.JSONRenderer()


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Route structlog and the standard library's loggers (uvicorn, APScheduler, alembic) through one
    handler on `stream` (stderr by default), in the configured format and level; the handler."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared[:1], structlog.stdlib.filter_by_level, *shared[1:], _wrap],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # tests configure it more than once,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer(settings.log_format)],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.value)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "alembic"):
        logging.getLogger(name).handlers = []  # one handler, the root's
        logging.getLogger(name).propagate = True
    # the request log (api/observability.py) replaces uvicorn's access line, which writes the query string
    logging.getLogger("uvicorn.access").disabled = True
    for chatty in ("apscheduler", "alembic"):  # one line per job run is ours; `escrow db status` tells migrations
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    return handler


_wrap = structlog.stdlib.ProcessorFormatter.wrap_for_formatter


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
