from django.urls import path

from crm import api

app_name = "crm"
urlpatterns = [
    path("events/", api.events_post, name="events"),
]
