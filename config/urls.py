from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from config import views

admin.site.site_header = "Tagwerk"
admin.site.site_title = "Tagwerk"
admin.site.index_title = "Tagwerk"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include("crm.urls")),  # POST /api/events/
    path("", include("campaigns.urls")),
]
