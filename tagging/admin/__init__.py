"""The tagging core in the admin (Django's autodiscovery imports this package)."""

from tagging.admin import vocabulary  # noqa: F401  (registers the vocabulary's admins)
