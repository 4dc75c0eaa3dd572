"""The notify adapter conformance suite, one module per area.

Adapter authors import :mod:`queuert_conformance.notify` (which gathers every case class) rather than
these modules.
"""
