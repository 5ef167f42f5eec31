"""The HTTP API's share of ``crm``: its framework and its endpoints.

``/api/v1/`` is one django-ninja API composed in ``config.api`` from the routers
each app owns (docs/api.md): ``crm`` brings the framework every router uses
(``framework``: token authentication with scopes and rate limits, the one error
format, cursor pagination, the ``phone`` path), the events endpoint
(``events``, also served at the old ``POST /api/events/``), the contact fields
and their writes (``contacts``) and the token's own description (``token``).
"""
