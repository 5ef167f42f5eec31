from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PreferencesConfig(AppConfig):
    """A person's language, kept on the server so it follows them to every browser."""

    name = "config.preferences"
    label = "preferences"
    verbose_name = _("Preferences")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from config.preferences.middleware import remember_language

        # The choice is read once, at login, into the session: pages cost no query for it.
        user_logged_in.connect(remember_language, dispatch_uid="tagwerk-remember-language")
