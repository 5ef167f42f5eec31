from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DemoConfig(AppConfig):
    """``seed_demo``: a plausible customer base with the source documents' vocabulary."""

    name = "tagging.demo"
    verbose_name = _("Demo data")
