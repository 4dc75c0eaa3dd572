"""The project's ASGI application: Django, with queuert's dashboard under /admin/queue/."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
django_app = get_asgi_application()

from queuert_django.auth import staff_only  # noqa: E402  (after Django is set up)
from queuert_django.dashboard import with_dashboard  # noqa: E402

application = with_dashboard(django_app, "/admin/queue", auth=staff_only)
