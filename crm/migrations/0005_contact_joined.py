import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    """``Contact.joined_at`` (the expression field ``joined``): when the person became a customer. Existing contacts start at the
    earlier of their creation and their first event."""

    dependencies = [
        ("crm", "0004_apitoken_dimensions_rate_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="joined_at",
            field=models.DateTimeField(
                db_index=True, default=django.utils.timezone.now,
                help_text="The earliest of: a customer-since date from an import, the first "
                          "event or message, and when the contact was created in Tagwerk.",
                verbose_name="customer since"),
        ),
        migrations.RunSQL("UPDATE crm_contact SET joined_at = created_at",
                          reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(
            """
            UPDATE crm_contact SET joined_at = first.at
              FROM (SELECT contact_id, MIN(occurred_at) AS at FROM crm_event
                     GROUP BY contact_id) AS first
             WHERE crm_contact.id = first.contact_id AND first.at < crm_contact.joined_at
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
