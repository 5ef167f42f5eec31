from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from config import api
from crm.api.framework import unknown_address

admin.site.site_header = "Tagwerk"
admin.site.site_title = "Tagwerk"
admin.site.index_title = "Tagwerk"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", api.urls()),  # docs/api.md
    re_path(r"^api/v1/(?P<rest>[\s\S]*)$", unknown_address),  # the rest, in the error format
    path("api/", include("crm.urls")),  # POST /api/events/, as before v1
    path("", include("campaigns.urls")),
]
