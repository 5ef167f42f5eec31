"""Activate the language a signed-in person chose, wherever they sign in."""

from __future__ import annotations

from django.utils import translation

from config.preferences.services import user_language

SESSION_KEY = "tagwerk_language"


class UserLanguageMiddleware:
    """After ``LocaleMiddleware``: the user's stored language beats Accept-Language.

    The choice is read once per session (then kept in the session), so a page costs
    no extra query; choosing a language updates both.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = self._language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)

    @staticmethod
    def _language(request) -> str:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return ""
        session = getattr(request, "session", None)
        if session is not None and SESSION_KEY in session:
            return session[SESSION_KEY]
        language = user_language(user)
        if session is not None:
            session[SESSION_KEY] = language
        return language


def remember_language(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: keep the person's language in their new session."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = user_language(user)
