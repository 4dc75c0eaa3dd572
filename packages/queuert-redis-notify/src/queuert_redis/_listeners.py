"""Routing of local listeners: the core's shared building block, with this adapter's logger."""

from __future__ import annotations

import logging

from queuert.listeners import Listener
from queuert.listeners import Listeners as _Listeners

__all__ = ["Listener", "Listeners"]

_logger = logging.getLogger("queuert.notify.redis")


class Listeners(_Listeners):
    def __init__(self, topic: str) -> None:
        super().__init__(topic, _logger)
