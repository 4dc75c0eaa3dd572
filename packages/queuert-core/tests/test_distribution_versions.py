"""Every distribution of the workspace carries the one version that ``queuert.__version__`` states
(each pyproject reads it from ``queuert/__init__.py``), and the adapters accept that core version."""

from __future__ import annotations

from importlib import metadata

import pytest
import queuert
from packaging.requirements import Requirement

DISTRIBUTIONS = [
    "queuert-core",
    "queuert-sqlite",
    "queuert-postgres",
    "queuert-redis-notify",
    "queuert-nats-notify",
    "queuert-dashboard",
    "queuert-conformance",
]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_the_distribution_has_the_package_version(distribution: str) -> None:
    assert metadata.version(distribution) == queuert.__version__


@pytest.mark.parametrize("distribution", DISTRIBUTIONS[1:])
def test_the_distribution_accepts_this_core_version(distribution: str) -> None:
    requirements = [Requirement(text) for text in metadata.requires(distribution) or []]
    (core,) = [r for r in requirements if r.name == "queuert-core"]
    assert core.specifier, f"{distribution} must name a compatible queuert-core range"
    assert core.specifier.contains(queuert.__version__)
