"""The behaviour suites depend only on the adapter's id policy: they pass unchanged on an adapter
whose ids are not UUIDs (``queuert_state_harness`` of this directory's conftest)."""

from __future__ import annotations

from queuert_conformance.behaviour import *  # noqa: F403
