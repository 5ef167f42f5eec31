from django.urls import path

from crm.shops.views import shop_webhook

app_name = "shops"
urlpatterns = [path("webhooks/shop/<slug:slug>/", shop_webhook, name="shop_webhook")]
