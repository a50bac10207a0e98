"""Settings of the example DRF backend that cachegate is tested in front of.

Environment:
    EXAMPLE_DB_PATH            SQLite file (default: db.sqlite3 next to manage.py)
    DJANGO_SECRET_KEY          default: a fixed development key (this is an example)
    CACHEGATE_WEBHOOK_URL      e.g. http://127.0.0.1:8080/_cachegate/invalidate (empty: no purges sent)
    CACHEGATE_WEBHOOK_SECRET   the proxy's webhook secret
    CACHEGATE_WEBHOOK_RAISE    "1": a purge that fails makes the write's request fail too
"""

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# The shipped integration, used as is from the repository: deploy/integrations/django holds
# cachegate_signals.py, which finds cachegate_client.py one folder up by itself.
INTEGRATION_DIR = BASE_DIR.parent.parent / "integrations" / "django"
if str(INTEGRATION_DIR) not in sys.path:
    sys.path.insert(0, str(INTEGRATION_DIR))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret-0123456789abcdef")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework.authtoken",
    "school",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "exampleproject.urls"
WSGI_APPLICATION = "exampleproject.wsgi.application"

# The browsable API renders HTML templates.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {
            # Several gunicorn workers write concurrently: take the write lock when a
            # transaction starts and wait for it instead of failing with "database is locked".
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

REST_FRAMEWORK = {
    # DRF tokens ("Authorization: Token <key>") and Django sessions (the sessionid cookie).
    # Token first: its WWW-Authenticate makes anonymous requests 401 rather than 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "school.pagination.Pagination",
    "PAGE_SIZE": 5,
    "DEFAULT_FILTER_BACKENDS": [
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # JSON and the browsable API, DRF's default: DRF then answers "Vary: Accept".
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

# cachegate: where the signed purges go (deploy/integrations/django/cachegate_signals.py).
CACHEGATE_WEBHOOK_URL = os.environ.get("CACHEGATE_WEBHOOK_URL", "")
CACHEGATE_WEBHOOK_SECRET = os.environ.get("CACHEGATE_WEBHOOK_SECRET", "")
CACHEGATE_WEBHOOK_TIMEOUT = 5.0
# Raise (a 500 for the request that wrote) when a purge could not be sent, instead of logging
# it: the end-to-end check sets it so that a lost purge can never pass unnoticed.
CACHEGATE_WEBHOOK_RAISE = os.environ.get("CACHEGATE_WEBHOOK_RAISE", "").lower() in ("1", "true", "yes")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"cachegate": {"handlers": ["console"], "level": "INFO"}},
}
