"""The read API for other systems: JSON, versioned (``/api/v1``), read-only, by session or bearer token.

* :mod:`gridmap.api.views`: the Flask blueprint (``/indicators``, ``/overdue``,
  ``/changes``, ``/openapi.json``), registered on the dashboard's server by
  :func:`gridmap.dashboard.app.create_app`;
* :mod:`gridmap.api.figures`: parameters and answers, within the caller's
  scope, computed by the same functions as ``gridmap report`` and the
  dashboard's cards;
* :mod:`gridmap.api.openapi`: the OpenAPI 3 description;
* :mod:`gridmap.api.store`: its few queries.

Tokens are made, listed and revoked with ``gridmap users token / tokens /
token-revoke`` (:mod:`gridmap.access.tokens`).
"""

from gridmap.api.views import API_PREFIX, api_blueprint, register_api

__all__ = ["API_PREFIX", "api_blueprint", "register_api"]
