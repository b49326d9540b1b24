"""Superset dashboards as code: configuration, deploy, access (roles and row-level security), serving.

Modules that import Superset run only in ``.venv-superset`` (``deploy``, ``browser``); ``home``,
``server`` and ``api`` use the standard library and ``requests`` only, so the pipeline's ``.venv``
(tests, ``knutpunkt dashboards``) can start, stop and query the server without importing Superset.
"""
