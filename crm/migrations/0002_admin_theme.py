"""Install the “Tagwerk” admin theme so it is there on the first run."""

from django.db import migrations

THEME = {
    "title": "Tagwerk",
    "title_visible": True,
    "logo_visible": False,
    "css_header_background_color": "#1F3A5F",
    "css_header_text_color": "#FFFFFF",
    "css_header_link_color": "#FFFFFF",
    "css_header_link_hover_color": "#C9D8F0",
    "css_module_background_color": "#2E5C8A",
    "css_module_background_selected_color": "#EAF1FB",
    "css_module_link_color": "#FFFFFF",
    "css_module_link_selected_color": "#1F3A5F",
    "css_generic_link_color": "#1F6FB2",
    "css_save_button_background_color": "#2E7D32",
    "css_save_button_background_hover_color": "#1B5E20",
    "list_filter_dropdown": True,
    "list_filter_sticky": True,
    "related_modal_active": True,
    "foldable_apps": True,
    "show_fieldsets_as_tabs": False,
}


def install_theme(apps, schema_editor):
    Theme = apps.get_model("admin_interface", "Theme")
    Theme.objects.exclude(name="Tagwerk").update(active=False)
    Theme.objects.update_or_create(name="Tagwerk", defaults={**THEME, "active": True})


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0001_initial"),
        ("admin_interface", "0032_alter_theme_defaults"),
    ]
    operations = [migrations.RunPython(install_theme, migrations.RunPython.noop)]
