import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("tagwerk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# insight (issue 8): its tasks live in a sub-package autodiscovery does not visit.
app.autodiscover_tasks(["tagging.insight"])
