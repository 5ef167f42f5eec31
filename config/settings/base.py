"""Tagwerk settings, read from the environment (12-factor).

With no environment at all this runs the embedded default: SQLite and a
filesystem Celery broker under ``var/``, the sandbox WhatsApp sender, DEBUG on.
See README "Configuration" and "Scaling out" for production.
"""

from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import env, env_bool, env_int, env_list

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env("TAGWERK_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)

_INSECURE_KEY = "insecure-development-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", _INSECURE_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == _INSECURE_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters when DEBUG is off "
        '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(64))").'
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "admin_interface",
    "colorfield",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "guardian",
    "import_export",
    "django_celery_beat",
    "axes",
    "crm",
    "crm.shops",
    "tagging",
    "tagging.audiences",
    "tagging.imports",
    "tagging.rules",
    "tagging.insight",
    "tagging.demo",
    "tagging.offers",
    "campaigns",
    "campaigns.entrypoints",
    "campaigns.chatwoot",
    "campaigns.journeys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'tagwerk.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one file: WAL lets readers run
    # beside the writer, IMMEDIATE avoids "database is locked" on upgrade.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a login while its username and address are locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
GUARDIAN_RAISE_403 = True

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is refused for LOGIN_LOCKOUT_MINUTES, with a page saying so.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no start-up banner in every command's output
AXES_LOCKOUT_CALLABLE = "config.views.login_locked_out"
# Behind a proxy the client address is the last one it appended to X-Forwarded-For.
AXES_IPWARE_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if AXES_IPWARE_PROXY_COUNT else ("REMOTE_ADDR",))
ANONYMOUS_USER_NAME = None

# --- Internationalisation ---------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("de", _("German")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env("TIME_ZONE", "UTC")

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))

X_FRAME_OPTIONS = "SAMEORIGIN"  # django-admin-interface shows related popups in iframes
SILENCED_SYSTEM_CHECKS = ["security.W019"]

# --- Security (production) --------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Cache ------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------
# The embedded default is kombu's filesystem transport: no server, no second
# SQLite writer competing with Django for the database lock (the SQLAlchemy
# transport would be one), and several processes can share it on one machine.
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        # Exchange tables; kombu's default is ./control, in whatever directory a process runs.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis keeps a delivered, unacknowledged message for this long before handing it to
    # another worker: a worker killed with SIGKILL has its task redelivered within about
    # this many seconds (kombu's default is an hour). A task still running by then is
    # delivered a second time; long jobs find themselves claimed (crm.jobs) and the
    # duplicate returns at once. Checked every 5 s rather than kombu's 100 s.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 45),
        "unacked_restore_interval": 5, "unacked_restore_throttle": 1,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Three queues, so that no kind of work waits behind another: "celery" (sending, beat's
# ticks, short tasks), "webhooks" (stored WhatsApp webhooks: a burst of statuses never
# delays sending) and "jobs" (imports, bulk tag operations, scheduled rule runs: minutes
# of work). Workers consume all three (``-Q celery,webhooks,jobs``), or dedicated workers
# take "webhooks" or "jobs" (docs/operations.md).
CELERY_TASK_ROUTES = {
    "campaigns.tasks.webhooks_drain_task": {"queue": "webhooks"},
    "tagging.imports.tasks.*": {"queue": "jobs"},
    "tagging.audiences.tasks.bulk_operation_run_task": {"queue": "jobs"},
    "tagging.rules.tasks.rule_run_task": {"queue": "jobs"},
}


def beat_expires(seconds: int) -> dict:
    """Options for a frequent beat entry: a run queued while no worker runs expires.

    A backlog of ticks behind a stopped worker is dropped instead of run all at once.
    django-celery-beat's DatabaseScheduler reads ``expire_seconds``; Celery's own
    scheduler reads ``expires``.
    """
    return {"expires": seconds, "expire_seconds": seconds}


# --- Tagwerk ----------------------------------------------------------------
# Long jobs (imports, bulk tag operations and their undo, rule runs; crm.jobs): a running
# job with no heartbeat for this long is taken over by another worker; after this many
# claims it is failed; beat's sweeper looks this often (docs/reliability-jobs.md).
TAGWERK_JOB_STALE_SECONDS = env_int("TAGWERK_JOB_STALE_SECONDS", 30)
TAGWERK_JOB_MAX_ATTEMPTS = env_int("TAGWERK_JOB_MAX_ATTEMPTS", 3)
TAGWERK_JOB_SWEEP_SECONDS = env_int("TAGWERK_JOB_SWEEP_SECONDS", 15)
TAGWERK_DEFAULT_REGION = env("TAGWERK_DEFAULT_REGION", "DE").upper() or None
# Bulk tag changes on more contacts than this run on a worker with progress.
TAGWERK_BULK_ASYNC_THRESHOLD = env_int("TAGWERK_BULK_ASYNC_THRESHOLD", 5000)
# Where recipients reach this server: tracked links (link:<url> variables) point here.
TAGWERK_PUBLIC_URL = env("TAGWERK_PUBLIC_URL", "http://127.0.0.1:8000")

WHATSAPP_BACKEND = env("WHATSAPP_BACKEND", "campaigns.backends.sandbox.SandboxBackend")
WHATSAPP_GRAPH_BASE_URL = env("WHATSAPP_GRAPH_BASE_URL", "https://graph.facebook.com")
WHATSAPP_API_VERSION = env("WHATSAPP_API_VERSION", "v21.0")
WHATSAPP_PHONE_NUMBER_ID = env("WHATSAPP_PHONE_NUMBER_ID", "")
WHATSAPP_ACCESS_TOKEN = env("WHATSAPP_ACCESS_TOKEN", "")
WHATSAPP_APP_SECRET = env("WHATSAPP_APP_SECRET", "")
WHATSAPP_VERIFY_TOKEN = env("WHATSAPP_VERIFY_TOKEN", "")
WHATSAPP_MAX_MPS = env_int("WHATSAPP_MAX_MPS", 80)

# --- Campaigns ------------------------------------------------------------------
# Unique recipients per rolling 24 h (the portfolio's messaging tier: 250, 2000,
# 10000, 100000; 0 = unlimited).
WHATSAPP_DAILY_UNIQUE_LIMIT = env_int("WHATSAPP_DAILY_UNIQUE_LIMIT", 0)
# Workers sending for one campaign at once, at most: a campaign uses one per 250 msg/s of
# its rate, at least 2 (one goes on when another's worker dies); the bucket is shared anyway.
WHATSAPP_SEND_CONCURRENCY = env_int("WHATSAPP_SEND_CONCURRENCY", 4)
# Requests one send loop keeps in flight at most (threads; rate / 25 of them are used).
WHATSAPP_SEND_THREADS = env_int("WHATSAPP_SEND_THREADS", 64)
# A send in flight this long with no webhook is presumed never accepted and queued again.
WHATSAPP_INFLIGHT_GRACE_SECONDS = env_int("WHATSAPP_INFLIGHT_GRACE_SECONDS", 600)
# The sandbox posts its webhooks here over HTTP; empty: straight into the intake.
WHATSAPP_SANDBOX_WEBHOOK_URL = env("WHATSAPP_SANDBOX_WEBHOOK_URL", "")
CAMPAIGNS_CAP_PER_DAY = env_int("CAMPAIGNS_CAP_PER_DAY", 1)
CAMPAIGNS_CAP_PER_WEEK = env_int("CAMPAIGNS_CAP_PER_WEEK", 3)
CAMPAIGNS_CONVERSION_DAYS = env_int("CAMPAIGNS_CONVERSION_DAYS", 7)
# Fixed schedules (beat copies them into its table); the rest are edited in the admin.
CELERY_BEAT_SCHEDULE = {
    "campaigns-tick": {"task": "campaigns.tasks.campaigns_tick_task", "schedule": 2.0,
                       "options": beat_expires(5)},
}
CELERY_BEAT_SCHEDULE["jobs-sweep"] = {
    "task": "crm.tasks.jobs_sweep_task", "schedule": float(TAGWERK_JOB_SWEEP_SECONDS),
    "options": beat_expires(TAGWERK_JOB_SWEEP_SECONDS),
}
# 131049 (per-user marketing limit): first retry after this many hours (then doubling), N times.
CAMPAIGNS_LIMITED_RETRY_HOURS = env_int("CAMPAIGNS_LIMITED_RETRY_HOURS", 24)
CAMPAIGNS_LIMITED_RETRIES = env_int("CAMPAIGNS_LIMITED_RETRIES", 2)
# --- /campaigns ----------------------------------------------------------------

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "tagwerk@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Celery's received/succeeded/sending-due lines for the frequent beat tasks (the
    # 2-second tick, the job sweeper, the journeys tick). The campaigns tick logs what it
    # starts (campaigns.tick); the sweeper warns for each job it queues again.
    "filters": {"quiet_tasks": {"()": "config.logfilters.QuietTasks",
                                "tasks": ["campaigns.tasks.campaigns_tick_task",
                                          "crm.tasks.jobs_sweep_task",
                                          "campaigns.journeys.tasks.journeys_tick_task"]}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        **{name: {"filters": ["quiet_tasks"]}
           for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")},
    },
}

# --- Insight: health report and dashboard; defaults in tagging/insight/conf.py ---
TAGWERK_INSIGHT = {
    "REPORT_RECIPIENTS": env_list("TAGWERK_HEALTH_REPORT_RECIPIENTS", []),
}

# --- Audiences: saved segment counts, refreshed hourly (beat copies this into its table) ---
CELERY_BEAT_SCHEDULE["audiences-segment-counts"] = {
    "task": "tagging.audiences.tasks.segment_counts_refresh_task", "schedule": 3600.0,
    "options": beat_expires(1800),
}
CELERY_BEAT_SCHEDULE["audiences-tag-changes-prune"] = {
    "task": "tagging.audiences.tasks.tag_changes_prune_task", "schedule": 3600.0,
    "options": beat_expires(1800),
}

# --- Journeys: joined/birthday entries and due steps, every minute (docs/journeys.md) ---
CELERY_BEAT_SCHEDULE["journeys-tick"] = {
    "task": "campaigns.journeys.tasks.journeys_tick_task", "schedule": 60.0,
    "options": beat_expires(50),
}

# --- Imports: preview (dry-run) failed-rows files are deleted after this many days ---
IMPORTS_PREVIEW_RETENTION_DAYS = env_int("IMPORTS_PREVIEW_RETENTION_DAYS", 7)
CELERY_BEAT_SCHEDULE["imports-preview-cleanup"] = {
    "task": "tagging.imports.tasks.import_previews_cleanup_task", "schedule": 86400.0,
}

# --- Arrivals: entry points (links, QR codes, ads) and shop webhooks (docs/arrivals.md) ---
# The business's WhatsApp number as shown in WhatsApp Manager, for wa.me links and QR codes.
WHATSAPP_DISPLAY_PHONE_NUMBER = env("WHATSAPP_DISPLAY_PHONE_NUMBER", "")

# --- UI: languages, per-user language, error pages (docs/ui.md) ----------------------------
# German and Simplified Chinese are the marketers' languages; English is the source text.
# The catalogs are one per language under locale/ (LOCALE_PATHS above); the .mo files are
# committed, so no gettext tool is needed at run time (`make messages` rebuilds them).
INSTALLED_APPS += ["django.contrib.humanize", "config.preferences"]
# A user's stored language wins over the browser's Accept-Language (after LocaleMiddleware).
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                  "config.preferences.middleware.UserLanguageMiddleware")
TEMPLATES[0]["OPTIONS"]["context_processors"] += ["django.template.context_processors.i18n"]
LANGUAGE_COOKIE_NAME = "tagwerk_language"
# Counts are grouped per locale where shown (|intcomma, charts), not globally: a global
# separator would also write ids in forms as "1.234".

# --- Health and metrics: /healthz, /readyz, /metrics (docs/operations.md) -----------
INSTALLED_APPS += ["django_prometheus"]
# Request counts and latencies per view; the "before" middleware must come first.
MIDDLEWARE = ["django_prometheus.middleware.PrometheusBeforeMiddleware", *MIDDLEWARE,
              "django_prometheus.middleware.PrometheusAfterMiddleware"]
METRICS_TOKEN = env("METRICS_TOKEN", "")  # when set, /metrics wants "Authorization: Bearer …"
HEALTH_CACHE_SECONDS = env_int("HEALTH_CACHE_SECONDS", 2)  # per process: /readyz, /metrics reuse it
HEALTH_BEAT_MAX_AGE_SECONDS = env_int("HEALTH_BEAT_MAX_AGE_SECONDS", 600)
HEALTH_WEBHOOK_LAG_SECONDS = env_int("HEALTH_WEBHOOK_LAG_SECONDS", 60)

# --- API (/api/v1/, docs/api.md): rate limit per token; django-ninja serves the docs page ---
INSTALLED_APPS += ["ninja"]
TAGWERK_API_RATE_PER_MINUTE = env_int("TAGWERK_API_RATE_PER_MINUTE", 600)
TAGWERK_API_BURST = env_int("TAGWERK_API_BURST", 60)
TAGWERK_API_PAGE_SIZE = env_int("TAGWERK_API_PAGE_SIZE", 100)
TAGWERK_API_MAX_PAGE_SIZE = env_int("TAGWERK_API_MAX_PAGE_SIZE", 1000)

# --- Webhooks and sending under failure (docs/reliability-webhooks.md) ---
# Largest webhook body accepted (Meta's are at most 3 MB); larger ones are answered 413.
WHATSAPP_WEBHOOK_MAX_BYTES = env_int("WHATSAPP_WEBHOOK_MAX_BYTES", 3 * 1024 * 1024)
if REDIS_URL:
    # While Redis is unreachable the cache answers "not cached" and pages still render
    # (the admin reads its theme from the cache on every page); see config/cache.py.
    CACHES = {"default": {"BACKEND": "config.cache.ForgivingRedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}}

# --- Imports: limits on XLSX workbooks, checked before one is opened (zip bombs) ---
IMPORTS_XLSX_MAX_UNCOMPRESSED_MB = env_int("IMPORTS_XLSX_MAX_UNCOMPRESSED_MB", 1024)
IMPORTS_XLSX_MAX_RATIO = env_int("IMPORTS_XLSX_MAX_RATIO", 100)
IMPORTS_XLSX_MAX_SHARED_STRINGS_MB = env_int("IMPORTS_XLSX_MAX_SHARED_STRINGS_MB", 100)

# --- Privacy: access, erasure, deletion keywords, retention (docs/privacy.md) ---
# Key of the salted hash an erased number is remembered by. Set it once and keep it:
# changing it forgets which numbers were erased. Empty: derived from SECRET_KEY.
PRIVACY_NUMBER_SALT = env("PRIVACY_NUMBER_SALT", "")
# Days each kind of data is kept (0: forever); the admin's "Retention periods" override them.
PRIVACY_RETENTION_DAYS = {
    "webhook_bodies": env_int("PRIVACY_RETAIN_WEBHOOK_BODIES_DAYS", 30),
    "inbound_texts": env_int("PRIVACY_RETAIN_INBOUND_TEXTS_DAYS", 365),
    "events": env_int("PRIVACY_RETAIN_EVENTS_DAYS", 730),
    "status_events": env_int("PRIVACY_RETAIN_STATUS_EVENTS_DAYS", 90),
    "import_files": env_int("PRIVACY_RETAIN_IMPORT_FILES_DAYS", 30),
    "failed_row_files": env_int("PRIVACY_RETAIN_FAILED_ROW_FILES_DAYS", 30),
}
# Words that, as a whole message, ask for erasure, besides those in the admin.
PRIVACY_DELETION_KEYWORDS = env_list("PRIVACY_DELETION_KEYWORDS", [])
# Replies that confirm a deletion request, and how long the request waits for one.
PRIVACY_DELETION_CONFIRM_WORDS = env_list(
    "PRIVACY_DELETION_CONFIRM_WORDS", ["JA", "YES", "是", "确认"])
PRIVACY_DELETION_CONFIRM_HOURS = env_int("PRIVACY_DELETION_CONFIRM_HOURS", 24)
CELERY_BEAT_SCHEDULE["privacy-retention"] = {
    "task": "crm.tasks.retention_prune_task", "schedule": 86400.0,
    "options": beat_expires(43200),
}

# --- Chatwoot: the sidebar (a Dashboard App) and label sync (docs/chatwoot.md) ---
# The origin Chatwoot's dashboard runs on (https://chat.example.com): only it may frame the
# sidebar (CSP frame-ancestors; everything else keeps X_FRAME_OPTIONS). Chatwoot frames
# Tagwerk from another site, so the session and CSRF cookies must then be SameSite=None,
# which browsers accept only with Secure (Tagwerk on https).
CHATWOOT_ORIGIN = env("CHATWOOT_ORIGIN", "").rstrip("/")
if CHATWOOT_ORIGIN.startswith("https://"):
    SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "None"
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
