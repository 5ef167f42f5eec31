"""Project-wide pages that belong to no single app: lockout, refusals, language choice."""

from __future__ import annotations

import contextlib
import time
from hmac import compare_digest

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.urls import Resolver404, resolve, reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST
from prometheus_client import CONTENT_TYPE_LATEST

from config.metrics import metrics_text
from config.preferences.middleware import SESSION_KEY
from config.preferences.services import user_language_set
from crm.health import checks_answers
from tagging.roles import MARKETERS, TAG_ADMINISTRATORS


def login_locked_out(request, response=None, credentials=None) -> HttpResponse:
    """django-axes' lockout answer: the admin's look, how long, and what to do (HTTP 429)."""
    minutes = max(1, int(settings.AXES_COOLOFF_TIME.total_seconds() // 60))
    context = {**admin.site.each_context(request), "cooloff_minutes": minutes}
    return HttpResponse(render_to_string("registration/lockout.html", context, request), status=429)


# --- Refusals: who decides what, per admin page ------------------------------------------
# (app label, model name) → (the sentence that says whose job it is, the role that can help).
# Pages not listed get the general sentence and the site's administrators.
REFUSAL_HINTS: dict[tuple[str, str], tuple[str, str]] = {
    ("tagging", "tag"): (gettext_lazy("Only tag administrators define tags."),
                         TAG_ADMINISTRATORS),
    ("tagging", "dimension"): (gettext_lazy("Only tag administrators define dimensions and "
                                            "grant them to agents."), TAG_ADMINISTRATORS),
    ("tagging", "tagversion"): (gettext_lazy("The tag version log is kept for tag "
                                             "administrators and marketers."),
                                TAG_ADMINISTRATORS),
    ("insight", "healthreport"): (gettext_lazy("Tag health reports are for tag administrators "
                                               "and marketers."), TAG_ADMINISTRATORS),
    ("imports", "importjob"): (gettext_lazy("Imports are run by marketers."), MARKETERS),
    ("audiences", "bulkoperation"): (gettext_lazy("Bulk tag changes are run by marketers."),
                                     MARKETERS),
    ("audiences", "segment"): (gettext_lazy("Segments are kept by marketers."), MARKETERS),
    ("rules", "rule"): (gettext_lazy("Rules are kept by marketers and tag administrators."),
                        MARKETERS),
    ("rules", "rulerun"): (gettext_lazy("Rule runs are read by marketers and tag "
                                        "administrators."), MARKETERS),
    ("campaigns", "campaign"): (gettext_lazy("Campaigns are run by marketers."), MARKETERS),
    ("campaigns", "template"): (gettext_lazy("Message templates are kept by marketers."),
                                MARKETERS),
}
ACTIONS = {"add": gettext_lazy("add"), "change": gettext_lazy("change"),
           "delete": gettext_lazy("delete"), "changelist": gettext_lazy("open"),
           "history": gettext_lazy("see the history of")}


def _admin_target(path: str):
    """The admin model page ``path`` points at: (app label, model name, action) or None."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    if not match.url_name or "admin" not in match.namespaces:
        return None
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        prefix = f"{opts.app_label}_{opts.model_name}_"
        if match.url_name.startswith(prefix):
            return opts, model_admin, match.url_name[len(prefix):]
    return None


def _helpers(role: str) -> list[str]:
    """Who can help: the active members of ``role``, else the superusers (a few names)."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True)
    names = list(users.filter(groups__name=role).order_by("username")
                 .values_list("username", flat=True)[:5])
    if not names:
        names = list(users.filter(Q(is_superuser=True)).order_by("username")
                     .values_list("username", flat=True)[:5])
    return names


def _back_url(request) -> str:
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, {request.get_host()},
                                                   request.is_secure()) \
            and not referer.endswith(request.path):
        return referer
    return reverse("admin:index")


def _refusal(request, *, status: int, template: str, reason: str = "") -> HttpResponse:
    target = _admin_target(request.path)
    hint, role = "", TAG_ADMINISTRATORS
    page = ""
    if target is not None:
        opts, _model_admin, action = target
        hint, role = REFUSAL_HINTS.get((opts.app_label, opts.model_name), ("", role))
        verb = ACTIONS.get(action)
        if verb:
            page = _("You may not %(action)s %(things)s.") % {
                "action": verb, "things": opts.verbose_name_plural}
    context = {
        "reason": reason, "page_reason": page, "hint": hint, "helpers": _helpers(role),
        "back_url": _back_url(request), "home_url": reverse("admin:index"),
        "title": "",
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        # The sidebar needs the database; a refusal must render even when it cannot.
        with contextlib.suppress(DatabaseError):
            context = {**admin.site.each_context(request), **context}
    return HttpResponse(render_to_string(template, context, request), status=status)


def permission_denied(request, exception=None) -> HttpResponse:
    """403 in the admin's look: why, whose job it is, who can help, and a way back."""
    reason = str(exception) if exception is not None and str(exception) else ""
    return _refusal(request, status=403, template="403.html", reason=reason)


def page_not_found(request, exception=None) -> HttpResponse:
    """404 in the admin's look: the record may have been deleted; links back."""
    message = ""
    if exception is not None and exception.args and isinstance(exception.args[0], str):
        message = exception.args[0]
    return _refusal(request, status=404, template="404.html", reason=message)


def server_error(request) -> HttpResponse:
    """500: a static page (no database, no sidebar), in the admin's colours."""
    return HttpResponse(render_to_string("500.html", {"home_url": "/admin/"}), status=500)


# --- Language ----------------------------------------------------------------------------

@require_POST
@login_required
def language_set(request) -> HttpResponse:
    """Store the person's language (all their browsers), then go back where they were."""
    language = user_language_set(user=request.user, language=request.POST.get("language", ""))
    request.session[SESSION_KEY] = language
    target = request.POST.get("next") or request.META.get("HTTP_REFERER") or "/admin/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/admin/"
    response = HttpResponseRedirect(target)
    if language:
        translation.activate(language)
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language,
                            max_age=settings.LANGUAGE_COOKIE_AGE, samesite="Lax")
    else:
        response.delete_cookie(settings.LANGUAGE_COOKIE_NAME)
    return response


def healthz(request) -> JsonResponse:
    """The process answers (liveness): no database, no network."""
    return JsonResponse({"status": "ok"})


def readyz(request) -> JsonResponse:
    """Every registered check (readiness): 200 when the critical ones pass, else 503.

    ``failed`` names the checks that did not pass (critical or not), so an operator
    reading the answer sees at once what is wrong.
    """
    started = time.monotonic()
    answers = checks_answers()
    ready = all(a["ok"] for a in answers.values() if a["critical"])
    return JsonResponse({"status": "ready" if ready else "unavailable",
                         "failed": [name for name, a in answers.items() if not a["ok"]],
                         "checks": answers,
                         "ms": round((time.monotonic() - started) * 1000, 1)},
                        status=200 if ready else 503)


def metrics(request) -> HttpResponse:
    """Prometheus metrics of every process on this machine (multiprocess mode) and the
    checks' numbers. With ``METRICS_TOKEN`` set, a bearer token is required."""
    token = settings.METRICS_TOKEN
    if token and not compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("A valid bearer token is required.", status=401,
                            content_type="text/plain; charset=utf-8")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
