from django.contrib import admin
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from config import api, views
from crm.api.framework import unknown_address

admin.site.site_header = _("Tagwerk")
admin.site.site_title = _("Tagwerk")
admin.site.index_title = _("Tagwerk")
# The lists need the width (contacts: phone, name, tags, consent, country, last interaction
# beside the filters at 1,280 px); the start page lists every section instead.
admin.site.enable_nav_sidebar = False

# Refusals and missing pages in the admin's look (config/views.py).
handler403 = "config.views.permission_denied"
handler404 = "config.views.page_not_found"
handler500 = "config.views.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/language/", views.language_set, name="language_set"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    # gettext() for the admin's own scripts (tagging/static/tagwerk/*.js and the apps').
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["tagging", "campaigns", "crm"]),
         name="javascript-catalog"),
    path("api/v1/", api.urls()),  # docs/api.md
    re_path(r"^api/v1/(?P<rest>[\s\S]*)$", unknown_address),  # the rest, in the error format
    path("api/", include("crm.urls")),  # POST /api/events/, as before v1
    path("", include("campaigns.urls")),
    path("", include("crm.shops.urls")),  # POST /webhooks/shop/<slug>/
    path("", include("campaigns.chatwoot.urls")),  # the sidebar and Chatwoot's webhook
]
