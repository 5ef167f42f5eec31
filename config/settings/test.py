"""Test settings: the base settings with fast hashing and eager-free Celery."""

import os

os.environ.setdefault("DEBUG", "1")

from .base import *  # noqa: F403
from .base import DATABASES, VAR_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHATSAPP_BACKEND = "campaigns.backends.locmem.LocmemBackend"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = VAR_DIR / "test-media"
# Tests call services directly; a task enqueued in a test runs in-process.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Tests that start a real worker read the broker from the environment (Redis in CI).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
LOGGING = {"version": 1, "disable_existing_loggers": False}
# One cache per test process, emptied between tests (tests/conftest.py); tests of
# Redis-backed features connect to REDIS_URL themselves.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The audience index's snapshot is saved by tests that mean to (``index.snapshot_save``), not
# by a background thread racing the test database's flushes.
AUDIENCE_INDEX_SAVE_SECONDS = None
