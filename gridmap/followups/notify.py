"""Gateways of the reminder outbox: the interface an SMS or WeChat adapter implements, and two adapters
that send nothing (a JSON-lines file under ``./var/`` and the log).

A real adapter (an SMS platform, a WeChat template message) implements :class:`Gateway`:
``send(message) -> SendResult``; :func:`gateway_from_rules` picks the one the rules name
(``notifications.gateway``). No adapter here sends anything outside this machine.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from gridmap.domain.masking import mask_phone
from gridmap.rules.config import Rules

log = logging.getLogger(__name__)

#: Where :class:`FileGateway` appends by default, under the var directory (``GRIDMAP_VAR_DIR``, default ``./var``).
OUTBOX_FILE = Path("notifications") / "sent.jsonl"


def default_outbox_file() -> Path:
    """``<var dir>/notifications/sent.jsonl``."""
    from gridmap.config import get_settings

    return get_settings().var_dir / OUTBOX_FILE


@dataclass(frozen=True)
class OutboundMessage:
    """One reminder to send: the outbox row's id, channel (sms/wechat), recipient (a phone number) and text."""

    id: int
    channel: str
    recipient: str
    text: str


@dataclass(frozen=True)
class SendResult:
    """Whether the gateway accepted the message; its reference or the error."""

    ok: bool
    ref: str | None = None
    error: str | None = None


@runtime_checkable
class Gateway(Protocol):
    """What an SMS or WeChat adapter implements."""

    def send(self, message: OutboundMessage) -> SendResult:
        """Hand one message to the gateway; never raises for a refused message (returns ok=False)."""
        ...


class FileGateway:
    """Appends each message as one JSON line to a file (default ``<var dir>/notifications/sent.jsonl``, owner-only).

    The recipient is written masked (the file stands in for a gateway and is read by people).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_outbox_file()
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> SendResult:
        rec = {"id": message.id, "channel": message.channel, "recipient": mask_phone(message.recipient),
               "text": message.text, "at": datetime.now(UTC).isoformat()}
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        except OSError as exc:
            return SendResult(False, error=f"{type(exc).__name__}: {exc}")
        return SendResult(True, ref=f"file:{message.id}")


class LogGateway:
    """Writes each message to the log (recipient masked)."""

    def send(self, message: OutboundMessage) -> SendResult:
        log.info("reminder %d via %s to %s: %s", message.id, message.channel, mask_phone(message.recipient),
                 message.text)
        return SendResult(True, ref=f"log:{message.id}")


def gateway_from_rules(rules: Rules, *, path: str | Path | None = None) -> Gateway:
    """The gateway the rules name (``notifications.gateway``: file or log)."""
    if rules.notify_gateway == "log":
        return LogGateway()
    return FileGateway(path)


__all__ = ["OUTBOX_FILE", "default_outbox_file", "FileGateway", "Gateway", "LogGateway", "OutboundMessage", "SendResult",
           "gateway_from_rules"]
