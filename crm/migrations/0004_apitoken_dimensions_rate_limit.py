from django.db import migrations, models


class Migration(migrations.Migration):
    """API tokens name the dimensions they may change and may carry their own rate limit."""

    dependencies = [
        ("crm", "0003_contact_consent_and_export_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="dimensions",
            field=models.JSONField(blank=True, default=list, help_text="Ids of the dimensions whose tags the token may add and remove (tags:write, bulk:write).", verbose_name="dimensions"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="all_dimensions",
            field=models.BooleanField(default=False, help_text="May add and remove tags of every dimension, present and future.", verbose_name="all dimensions"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="rate_limit",
            field=models.PositiveIntegerField(blank=True, help_text="Leave empty for the default (setting TAGWERK_API_RATE_PER_MINUTE).", null=True, verbose_name="requests per minute"),
        ),
    ]
