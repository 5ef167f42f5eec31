"""Writes of the preferences table (its only writer)."""

from __future__ import annotations

from django.conf import settings

from config.preferences.models import Preference


def user_language_set(*, user, language: str) -> str:
    """Store ``language`` for ``user``; an unknown code is stored as "" (the browser's)."""
    known = {code for code, _name in settings.LANGUAGES}
    language = language if language in known else ""
    Preference.objects.update_or_create(user=user, defaults={"language": language})
    return language


def user_language(user) -> str:
    """The language ``user`` chose, or "" when they never chose one."""
    if not getattr(user, "is_authenticated", False):
        return ""
    return (Preference.objects.filter(user=user).values_list("language", flat=True).first()
            or "")
