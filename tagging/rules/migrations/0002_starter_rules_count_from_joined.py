from django.db import migrations

# Starter rules (by starter_key) still holding the segment they were shipped with are moved
# from "created" (when the contact reached Tagwerk) to "joined" (when the person became a
# customer): imported customers are then judged by their own history. A rule someone has
# edited keeps its text. Written out here: a migration never imports project code.
SHIPPED = [
    ("starter-2", "NOT last_read within 14d AND NOT created within 14d",
     "NOT last_read within 14d AND NOT joined within 14d"),
    ("starter-4", "NOT last_read within 60d AND NOT created within 60d",
     "NOT last_read within 60d AND NOT joined within 60d"),
    ("starter-5a", "created within 30d AND NOT (purchases >= 1 AND NOT first_purchase within 60d)",
     "joined within 30d AND NOT (purchases >= 1 AND NOT first_purchase within 60d)"),
    ("starter-5b", "NOT created within 30d AND created within 90d AND reads_per_week >= 1",
     "NOT joined within 30d AND joined within 90d AND reads_per_week >= 1"),
    ("starter-5c", "NOT created within 30d AND created within 90d AND reads_per_week < 1",
     "NOT joined within 30d AND joined within 90d AND reads_per_week < 1"),
    ("starter-5d", 'NOT created within 90d AND purchases < 2 AND "Lebenszyklus/*"',
     'NOT joined within 90d AND purchases < 2 AND "Lebenszyklus/*"'),
]


def forwards(apps, schema_editor):
    Rule = apps.get_model("rules", "Rule")
    for key, old, new in SHIPPED:
        Rule.objects.filter(starter_key=key, segment=old).update(segment=new)


def backwards(apps, schema_editor):
    Rule = apps.get_model("rules", "Rule")
    for key, old, new in SHIPPED:
        Rule.objects.filter(starter_key=key, segment=new).update(segment=old)


class Migration(migrations.Migration):
    dependencies = [
        ("rules", "0001_initial"),
        ("crm", "0003_contact_joined"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
