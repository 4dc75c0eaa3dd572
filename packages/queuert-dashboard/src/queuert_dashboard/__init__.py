"""A web dashboard for queuert: an ASGI application (Starlette) to see and steer chains and jobs.

>>> from queuert_dashboard import create_dashboard   # doctest: +SKIP
>>> app = create_dashboard(client, read_only=True)   # doctest: +SKIP

Serve it alone with ``queuert dashboard --dsn ...`` or mount it under a path of your own ASGI app.
"""

from queuert_dashboard.app import create_dashboard
from queuert_dashboard.security import AuthHook

__all__ = ["AuthHook", "create_dashboard"]
