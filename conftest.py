"""Settings every test of the workspace shares.

Hypothesis's per-example deadline times each example against the wall clock; on a machine busy
with other work (parallel test workers, servers on the same cores) an ordinary example can take
longer than it, which fails a test that checks behaviour, not speed. Speed is measured by
``tools/bench``, so no test here has a deadline.
"""

from hypothesis import settings

settings.register_profile("queuert", deadline=None)
settings.load_profile("queuert")
