from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PreferencesConfig(AppConfig):
    """A person's language, kept on the server so it follows them to every browser."""

    name = "config.preferences"
    label = "preferences"
    verbose_name = _("Preferences")
    default_auto_field = "django.db.models.BigAutoField"
