from django.db import migrations, models


class Migration(migrations.Migration):
    """Per import: what happens to unknown tags (replaces “create missing tags”), and which
    other channels' consent columns count for WhatsApp."""

    dependencies = [
        ("imports", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="unknown_tags",
            field=models.CharField(
                choices=[("fail", "fail the row (nothing of it is imported)"),
                         ("skip", "import the row without the unknown tags, with a warning"),
                         ("create", "create the missing tags (tag administrators only)")],
                default="fail",
                help_text="What happens to a row naming a tag that does not exist. Created "
                          "tags go into the dimension below and are logged in the tag version "
                          "log.",
                max_length=6, verbose_name="unknown tags"),
        ),
        migrations.RunSQL(
            "UPDATE imports_importjob SET unknown_tags = 'create' WHERE create_missing_tags",
            reverse_sql="UPDATE imports_importjob SET create_missing_tags = "
                        "(unknown_tags = 'create')",
        ),
        migrations.RemoveField(model_name="importjob", name="create_missing_tags"),
        migrations.AddField(
            model_name="importjob",
            name="consent_for_whatsapp",
            field=models.JSONField(
                blank=True, default=list,
                help_text="Consent columns of other channels (e.g. “Accepts SMS Marketing”) "
                          "whose “yes” the importer counts as a WhatsApp opt-in. A “no” in any "
                          "consent column always keeps the row from being opted in.",
                verbose_name="consent columns that count for WhatsApp"),
        ),
    ]
