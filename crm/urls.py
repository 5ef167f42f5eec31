from django.urls import path

from crm.api import events

app_name = "crm"
urlpatterns = [
    path("events/", events.events_post, name="events"),
]
