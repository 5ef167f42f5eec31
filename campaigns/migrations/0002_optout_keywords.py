"""Opt-out keywords every installation starts with (German, English, Chinese)."""

from django.db import migrations

KEYWORDS = ["STOP", "STOPP", "ABMELDEN", "UNSUBSCRIBE", "退订", "取消订阅"]


def add_keywords(apps, schema_editor):
    OptOutKeyword = apps.get_model("campaigns", "OptOutKeyword")
    for word in KEYWORDS:
        OptOutKeyword.objects.get_or_create(word=word)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunPython(add_keywords, migrations.RunPython.noop)]
