"""Settings, read from environment variables with embedded defaults.

With no variable set the service runs on a local SQLite file, Celery tasks run in-process and the
cache is local memory: nothing to install. Production sets DATABASE_URL (PostgreSQL, psycopg 3),
REDIS_URL (Celery broker + cache), SECRET_KEY, DEBUG=0 and ALLOWED_HOSTS. Every variable is listed
in the README.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-secret-key-change-me-in-production")
if not DEBUG and SECRET_KEY.startswith("dev-only"):
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = [
    h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "common",
    "stores",
    "inventory",
    "customers",
    "orders",
    "integrations",
    "notifications",
    "payments",
    "loyalty",
    "analytics",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language follows the browser (Accept-Language, or the language cookie)...
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # ... unless the signed-in staff member chose one (stores.StaffPreference).
    "stores.middleware.StaffLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.middleware.ApiJsonNotFoundMiddleware",
    "common.middleware.OutageMiddleware",
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

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATABASES = {
    # Health checks: a persistent connection that died (a PostgreSQL restart, a failover) is
    # replaced at the start of the next request instead of failing it.
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # SQLite serialises writers; wait for the lock instead of failing, and take it at BEGIN so a
    # read-then-write transaction cannot be refused half-way.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -----------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Production runs several processes (gunicorn workers, Celery): what they must share — the
# pickup-code lockout counters, the reference-data version, the availability versions — lives in
# Redis. Without it each process would keep its own and the limits would only look enforced, so
# production settings refuse to start (the embedded mode, DEBUG on, is one process by design).
if not DEBUG and not REDIS_URL and not env_bool("ALLOW_PER_PROCESS_STATE", False):
    raise ImproperlyConfigured(
        "DEBUG=0 needs REDIS_URL: the processes of a production set-up share their counters "
        "and cache versions there (see README, Production). For a single-process trial only, "
        "set ALLOW_PER_PROCESS_STATE=1."
    )
# Two views of the shared cache: `default` is best effort (what can be recomputed from the
# database: served without Redis when Redis is down), `counters` is strict (the pickup-code
# lockout and rate limits must not fail open: without Redis they answer 503).
_REDIS_CACHE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1}
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "common.cache.BestEffortRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": _REDIS_CACHE_OPTIONS,
        },
        "counters": {
            "BACKEND": "common.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": _REDIS_CACHE_OPTIONS,
        },
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "counters": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "omnistock-counters",
        },
    }
# In-process cache for values that are safe to keep per process: versioned entries (never
# stale) and short-lived flags.
CACHES["local"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "omnistock-local",
    "OPTIONS": {"MAX_ENTRIES": env_int("LOCAL_CACHE_MAX_ENTRIES", 5000)},
}

# The broker: Redis in production. `make run` uses kombu's filesystem transport
# (CELERY_BROKER_URL=filesystem://, messages are files under CELERY_BROKER_FOLDER), so a real
# worker and beat run the schedule with no server installed. With neither (tests, a bare
# `manage.py runserver`) tasks run in-process and nothing runs the schedule: /healthz says so.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL or "memory://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_folder = Path(os.environ.get("CELERY_BROKER_FOLDER", BASE_DIR / "var" / "broker"))
    for _sub in ("queue", "processed", "control"):
        (_broker_folder / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_folder / "queue"),
        "data_folder_out": str(_broker_folder / "queue"),
        "processed_folder": str(_broker_folder / "processed"),
        "control_folder": str(_broker_folder / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A broker that does not answer must fail a publish fast (the QueuedTask sweep publishes it
    # later), not hold the request for redis-py's default of no timeout.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 2}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL == "memory://")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "release-expired-reservations": {
        "task": "inventory.tasks.reservations_release_expired_task",
        "schedule": timedelta(minutes=1),
    },
    "dispatch-outbox": {
        "task": "integrations.tasks.outbox_dispatch_task",
        "schedule": timedelta(seconds=15),
    },
    "process-pending-pos-events": {
        "task": "integrations.tasks.pos_events_process_pending_task",
        "schedule": timedelta(seconds=30),
    },
    "retry-webhook-deliveries": {
        "task": "integrations.tasks.deliveries_retry_due_task",
        "schedule": timedelta(seconds=30),
    },
    "purge-webhook-events": {
        "task": "integrations.tasks.webhook_events_purge_task",
        "schedule": crontab(hour=4, minute=13),
    },
    "purge-idempotency-records": {
        "task": "common.tasks.idempotency_records_purge_task",
        "schedule": crontab(hour=4, minute=7),
    },
    "expire-uncollected-orders": {
        "task": "orders.tasks.orders_expire_overdue_task",
        "schedule": timedelta(minutes=5),
    },
    "send-order-notifications": {  # commits schedule it too; this catches a lost task
        "task": "orders.tasks.order_notifications_send_task",
        "schedule": timedelta(seconds=30),
    },
    "remind-pickups": {
        "task": "orders.tasks.orders_remind_pickup_task",
        "schedule": timedelta(minutes=15),
    },
    "check-back-in-stock-alerts": {
        "task": "notifications.tasks.alerts_check_task",
        "schedule": timedelta(minutes=1),
    },
    "expire-balance-holds": {
        "task": "payments.tasks.holds_expire_task",
        "schedule": timedelta(minutes=1),
    },
    "renew-card-authorisations": {
        "task": "payments.tasks.card_authorisations_renew_task",
        "schedule": timedelta(minutes=15),
    },
    "reconcile-stored-value": {
        "task": "payments.tasks.ledger_reconcile_task",
        "schedule": crontab(hour=3, minute=29),
    },
    "sandbox-expire-authorisations": {  # only does something with the sandbox provider
        "task": "payments.tasks.sandbox_authorisations_expire_task",
        "schedule": timedelta(minutes=5),
    },
    "loyalty-points-expire": {
        "task": "loyalty.tasks.points_expire_task",
        "schedule": crontab(hour=3, minute=20),
    },
    "loyalty-points-holds-expire": {
        "task": "loyalty.tasks.points_holds_expire_task",
        "schedule": timedelta(minutes=1),
    },
    "loyalty-coupon-holds-expire": {
        "task": "loyalty.tasks.coupon_holds_expire_task",
        "schedule": timedelta(minutes=5),
    },
    "loyalty-tiers-review": {
        "task": "loyalty.tasks.tiers_review_task",
        "schedule": crontab(hour=3, minute=40),
    },
    "loyalty-ledger-reconcile": {
        "task": "loyalty.tasks.ledger_reconcile_task",
        "schedule": crontab(hour=4, minute=30),
    },
    "reconcile-stock-ledger": {
        "task": "inventory.tasks.ledger_reconcile_task",
        "schedule": crontab(hour=3, minute=17),
    },
    "publish-queued-tasks": {  # tasks whose after-commit publish failed (broker down)
        "task": "common.tasks.queued_tasks_publish_task",
        "schedule": timedelta(seconds=15),
    },
    "scheduler-heartbeat": {  # /healthz reads it: a late heartbeat means a dead beat or worker
        "task": "common.tasks.scheduler_heartbeat_task",
        "schedule": timedelta(seconds=15),
    },
    "stock-day-rollup": {  # yesterday's stock per location and for the chain (analytics)
        "task": "analytics.tasks.stock_day_rollup_task",
        "schedule": crontab(hour=0, minute=20),
    },
}
# A task a commit owes is published by the commit; the QueuedTask sweep publishes it after this
# many seconds if that publish failed (the broker was down).
TASKS_SWEEP_GRACE_SECONDS = env_int("TASKS_SWEEP_GRACE_SECONDS", 30)
# /healthz answers 503 when the heartbeat above has not run for this long.
SCHEDULER_LATE_AFTER_SECONDS = env_int("SCHEDULER_LATE_AFTER_SECONDS", 120)
# For demos and tests only: run every interval job at least this often (crontab jobs unchanged).
if os.environ.get("SCHEDULER_TICK_SECONDS"):
    _tick = timedelta(seconds=env_int("SCHEDULER_TICK_SECONDS", 15))
    for _entry in CELERY_BEAT_SCHEDULE.values():
        if isinstance(_entry["schedule"], timedelta):
            _entry["schedule"] = min(_entry["schedule"], _tick)
CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get(
    "CELERY_BEAT_SCHEDULE_FILENAME", str(BASE_DIR / "var" / "celerybeat-schedule")
)

# --- Notifications --------------------------------------------------------------------------
# Email goes through Django's email backends (console by default; set EMAIL_BACKEND/EMAIL_HOST…
# in production). SMS goes through a swappable backend (console by default).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
# Where EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend writes each message.
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Omnistock <no-reply@omnistock.example>")
SMS_BACKEND = os.environ.get("SMS_BACKEND", "notifications.sms.ConsoleSmsBackend")
SMS_SENDER = os.environ.get("SMS_SENDER", "")
# Customer messages write times in the store's time zone; without a store (home delivery), in
# this one.
NOTIFICATIONS_TIME_ZONE = os.environ.get("NOTIFICATIONS_TIME_ZONE", "Europe/Paris")
# A reminder goes this many hours before a ready order's pickup deadline.
ORDERS_PICKUP_REMINDER_HOURS = env_int("ORDERS_PICKUP_REMINDER_HOURS", 24)
# Orders of these channels are paid where they were sold (a marketplace collects the money and
# pays the retailer out): the hand-over does not ask for their payment. Every other order is
# handed over only once nothing is due (what is due is taken at the till with the hand-over).
ORDERS_PAID_ELSEWHERE_CHANNELS = [
    c.strip()
    for c in os.environ.get("ORDERS_PAID_ELSEWHERE_CHANNELS", "marketplace").split(",")
    if c.strip()
]

# --- POS integration ----------------------------------------------------------------------------
# Largest POS event accepted (bytes); larger ones are refused with 413 and recorded as rejected.
POS_MAX_BODY_BYTES = env_int("POS_MAX_BODY_BYTES", 256 * 1024)
# A batch POST (a till's backlog): its size (≤ DATA_UPLOAD_MAX_MEMORY_SIZE) and event count.
POS_MAX_BATCH_BODY_BYTES = env_int("POS_MAX_BATCH_BODY_BYTES", 1024 * 1024)
POS_MAX_BATCH_EVENTS = env_int("POS_MAX_BATCH_EVENTS", 500)

# --- Customers (RCU) --------------------------------------------------------------------------
# Region used to read phone numbers typed without a country code (French national form).
CUSTOMERS_DEFAULT_PHONE_REGION = os.environ.get("CUSTOMERS_DEFAULT_PHONE_REGION", "FR")
# Placeholder values tills type by default are never matched nor stored; the defaults live in
# customers/identifiers.py, add yours here (regex per kind) or in the admin (junk patterns).
CUSTOMERS_EXTRA_JUNK_VALUES: dict[str, list[str]] = {}
CUSTOMERS_JUNK_CACHE_SECONDS = env_int("CUSTOMERS_JUNK_CACHE_SECONDS", 60)

# --- Loyalty --------------------------------------------------------------------------------------
# A coupon applied to a cart or a till ticket is held this long before it is free again.
LOYALTY_COUPON_HOLD_TTL_SECONDS = env_int("LOYALTY_COUPON_HOLD_TTL_SECONDS", 1800)

# --- Payments ----------------------------------------------------------------------------------
# Card processors are reached through a provider backend (payments/providers/). The sandbox
# provider behaves like a real processor (asynchronous, signed webhooks) without leaving the host.
PAYMENT_PROVIDER = os.environ.get("PAYMENT_PROVIDER", "sandbox")
PAYMENT_SANDBOX_WEBHOOK_SECRET = os.environ.get(
    "PAYMENT_SANDBOX_WEBHOOK_SECRET", "whsec_sandbox_dev"
)

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
# The back office speaks French and English (docs/i18n.md); the catalogues are committed,
# compiled (.mo) as well, so a checkout serves French without gettext installed.
LOCALE_PATHS = [BASE_DIR / "locale"]
# The clock the KPIs cut days, weeks and months on (analytics, docs/analytics.md).
REPORTS_TIME_ZONE = os.environ.get("REPORTS_TIME_ZONE", "Europe/Paris")
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]  # the back office's own styles (the pickup board)

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["common.auth.HasScopes"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsing.StrictJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.DefaultPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Per API key: balance checks of bearer codes are rate limited so they cannot be guessed.
    "DEFAULT_THROTTLE_RATES": {
        "gift_card_balance": os.environ.get("GIFT_CARD_BALANCE_RATE", "60/min"),
    },
    "PAGE_SIZE": 50,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Omnistock API",
    "DESCRIPTION": (
        "One stock, one customer, every channel. Authenticate with `Authorization: Api-Key <key>`; "
        "every write takes an `Idempotency-Key` header. Errors are JSON: "
        '`{"code": ..., "message": ..., "details": {...}}`.'
    ),
    "VERSION": "1.0.0",
    "ENUM_NAME_OVERRIDES": {
        "SalesChannelEnum": "common.channels.SalesChannel",
        "AdjustmentReasonEnum": "inventory.models.AdjustmentReason",
        "LanguageEnum": "customers.models.Language",
        "OrderStatusEnum": "orders.models.OrderStatus",
        "ConsentPurposeEnum": "customers.models.ConsentPurpose",
    },
    "SERVE_INCLUDE_SCHEMA": False,
    # The UIs' JavaScript and CSS from drf-spectacular-sidecar (pinned), not a CDN at @latest:
    # the docs page works on a machine without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.declare_error_responses",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
}

# Largest request body accepted by the API (webhooks included): larger ones get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1_048_576)

# --- Domain settings ------------------------------------------------------------------------
OMNISTOCK = {
    # Reservations made without an explicit expiry are held this long.
    "RESERVATION_DEFAULT_TTL_SECONDS": env_int("RESERVATION_DEFAULT_TTL_SECONDS", 30 * 60),
    # Stored API responses (for Idempotency-Key replays) are kept this many days: long enough
    # for any client retry, short enough not to keep personal data in them for long.
    "IDEMPOTENCY_RETENTION_DAYS": env_int("IDEMPOTENCY_RETENTION_DAYS", 7),
    # Upper bound on one stock quantity in one request: guards against absurd input.
    "MAX_QUANTITY_PER_LINE": env_int("MAX_QUANTITY_PER_LINE", 100_000),
    # Availability answers are cached per SKU under a version bumped by every committed change
    # of that SKU. With Redis (shared) they are as fresh as the database and may live long; with
    # the embedded per-process cache, this bounds how long another process's change can be unseen.
    "AVAILABILITY_CACHE_SECONDS": env_int("AVAILABILITY_CACHE_SECONDS", 300 if REDIS_URL else 2),
    # Outbound webhooks: signature tolerance and retry policy.
    "WEBHOOK_TIMEOUT_SECONDS": env_int("WEBHOOK_TIMEOUT_SECONDS", 5),
    "WEBHOOK_MAX_ATTEMPTS": env_int("WEBHOOK_MAX_ATTEMPTS", 8),
    # Endpoints sent to at once by one relay run (each over its own kept-alive connection).
    "WEBHOOK_RELAY_THREADS": env_int("WEBHOOK_RELAY_THREADS", 4),
    # Events (and their deliveries, delivered or not) are purged after this many days; a new
    # endpoint may replay from at most this far back.
    "WEBHOOK_RETENTION_DAYS": env_int("WEBHOOK_RETENTION_DAYS", 7),
    "WEBHOOK_SIGNATURE_TOLERANCE_SECONDS": env_int("WEBHOOK_SIGNATURE_TOLERANCE_SECONDS", 300),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
