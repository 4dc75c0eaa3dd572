"""The state adapter conformance suite, one module per area.

Import everything through :mod:`queuert_conformance.state` (``from queuert_conformance.state import *``).
"""
