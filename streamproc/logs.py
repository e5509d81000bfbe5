"""Logging: structlog for our events, and the stdlib records of faust, aiokafka and mode through the
same renderer (JSON lines on stdout in production, readable console output on a terminal)."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

_NOISY = {"aiokafka": logging.WARNING, "aiokafka.consumer.subscription_state": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog and stdlib logging to stdout through one renderer."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o, default=str).decode())
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, lvl in _NOISY.items():
        logging.getLogger(name).setLevel(max(lvl, root.level))
