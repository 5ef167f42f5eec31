"""Project-wide pages that belong to no single app: lockout, refusals, language choice."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.template.loader import render_to_string

READY_CACHE_KEY = "tagwerk:readyz"


def login_locked_out(request, response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer: the admin's look, how long, and what to do (HTTP 429)."""
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    context = {**admin.site.each_context(request), "cooloff_minutes": minutes}
    return HttpResponse(render_to_string("registration/lockout.html", context, request), status=429)





READY_CACHE_KEY = "tagwerk:readyz"
