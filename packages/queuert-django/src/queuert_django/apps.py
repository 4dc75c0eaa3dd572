"""The Django application: add ``"queuert_django"`` to ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class QueuertConfig(AppConfig):  # type: ignore[misc]
    name = "queuert_django"
    label = "queuert"
    verbose_name = "queuert"
