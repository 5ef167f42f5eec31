from django.urls import path

from campaigns.views import whatsapp_webhook

app_name = "campaigns"
urlpatterns = [path("webhooks/whatsapp/", whatsapp_webhook, name="whatsapp_webhook")]
