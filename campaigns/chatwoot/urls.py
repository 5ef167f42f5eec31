from django.urls import path

from campaigns.chatwoot import views

app_name = "chatwoot"
urlpatterns = [
    path("chatwoot/sidebar/", views.sidebar, name="sidebar"),
    path("chatwoot/sidebar/panel/", views.sidebar_panel, name="sidebar_panel"),
    path("chatwoot/sidebar/contact/", views.sidebar_contact_create_view, name="sidebar_create"),
    path("chatwoot/signed-in/", views.signed_in, name="signed_in"),
    path("webhooks/chatwoot/<str:token>/", views.chatwoot_webhook, name="webhook"),
]
