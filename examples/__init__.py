"""Runnable examples of queuert, one feature per module (``python -m examples.<name>``)."""
