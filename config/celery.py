import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("tagwerk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Sub-packages with their own tasks.py, which autodiscovery (one level per app) does not visit.
app.autodiscover_tasks(["tagging.insight", "tagging.imports"])
