"""Keyword-only service functions: the platform's behaviour, called by the API routers, the CLI and tests.

Each function takes an open session (and the blob store where bytes are involved), checks its input,
changes the store and raises a :class:`~visiontrain.services.errors.ServiceError` subclass when the
request cannot be done; the caller commits.
"""
