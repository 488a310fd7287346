"""Structured logs: one JSON object per line on stderr, so a log shipper (or jq) can read them."""
from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
                 "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def setup_json_logging(level: int = logging.INFO) -> None:
    """Send our records and uvicorn's own (start-up, errors) as JSON lines to stderr (idempotent)."""
    for name, lvl in (("studyabroadgpt.serve", level), ("uvicorn.error", logging.WARNING)):
        logger = logging.getLogger(name)
        if any(isinstance(h.formatter, JSONFormatter) for h in logger.handlers):
            continue
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JSONFormatter())
        logger.addHandler(handler)
        logger.setLevel(lvl)
        logger.propagate = False
