"""Every suite module can be star-imported next to the others: no case class name is exported by two
suites, so one test module importing them all collects every case."""

from __future__ import annotations

import importlib
from collections import defaultdict

SUITES = [
    "queuert_conformance.state",
    "queuert_conformance.behaviour",
    "queuert_conformance.notify",
]


def test_no_case_class_name_is_exported_by_two_suites() -> None:
    exporters: defaultdict[str, list[str]] = defaultdict(list)
    for suite in SUITES:
        module = importlib.import_module(suite)
        for name in module.__all__:
            if name.startswith("Test"):
                exporters[name].append(suite)
    shared = {name: suites for name, suites in exporters.items() if len(suites) > 1}
    assert shared == {}


def test_every_exported_case_class_is_a_class_of_its_suite() -> None:
    for suite in SUITES:
        module = importlib.import_module(suite)
        for name in module.__all__:
            value = getattr(module, name)
            if name.startswith("Test"):
                assert isinstance(value, type) and value.__name__ == name, (suite, name)
