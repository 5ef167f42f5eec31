"""Project-wide pages that belong to no single app."""

from __future__ import annotations

from hmac import compare_digest

from django.conf import settings
from django.contrib import admin
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from prometheus_client import CONTENT_TYPE_LATEST

from config.metrics import metrics_text
from crm.health import checks_run

READY_CACHE_KEY = "tagwerk:readyz"


def login_locked_out(request, response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer: the admin's look, how long, and what to do (HTTP 429)."""
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    context = {**admin.site.each_context(request), "cooloff_minutes": minutes}
    return HttpResponse(render_to_string("registration/lockout.html", context, request), status=429)


def healthz(request) -> JsonResponse:
    """The process answers (liveness): no database, no network."""
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    """Every registered check (readiness): 200 when the critical ones pass, else 503.

    Cached for a second or two so a load balancer asking every few seconds per process
    costs a handful of cheap queries, whatever its rate.
    """
    answers = cache.get(READY_CACHE_KEY) if settings.HEALTH_CACHE_SECONDS else None
    if answers is None:
        answers = checks_run()
        if settings.HEALTH_CACHE_SECONDS:
            cache.set(READY_CACHE_KEY, answers, settings.HEALTH_CACHE_SECONDS)
    ready = all(a["ok"] for a in answers.values() if a["critical"])
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": answers},
                        status=200 if ready else 503)


def metrics(request) -> HttpResponse:
    """Prometheus metrics of every process on this machine (multiprocess mode) and the
    checks' numbers. With ``METRICS_TOKEN`` set, a bearer token is required."""
    token = settings.METRICS_TOKEN
    if token and not compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("A valid bearer token is required.", status=401,
                            content_type="text/plain; charset=utf-8")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
