from django.urls import path

from campaigns.views import link_redirect, whatsapp_webhook

app_name = "campaigns"
urlpatterns = [
    path("webhooks/whatsapp/", whatsapp_webhook, name="whatsapp_webhook"),
    path("l/<str:token>/", link_redirect, name="link"),  # tracked links (campaigns.links)
    path("l/<str:token>", link_redirect),  # the same from a URL button (no slash after {{1}})
]
