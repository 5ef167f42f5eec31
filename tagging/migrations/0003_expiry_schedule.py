from django.db import migrations

TASK = "tagging.tasks.expired_assignments_remove_task"


def schedule_create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_hour, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(
        name="Remove expired tag assignments",
        defaults={"task": TASK, "interval": every_hour, "enabled": True,
                  "description": "Removes tag assignments whose expiry has passed "
                                 "(set-based, logged with reason “expiry”)."},
    )


def schedule_delete(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    """Run the expiry of tag assignments hourly on Celery beat (editable under Periodic tasks)."""

    dependencies = [
        ("tagging", "0002_assignment_cascades"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedule_create, schedule_delete)]
