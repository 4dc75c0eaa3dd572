"""Behaviour suites: the job model exercised through the public client and worker."""
