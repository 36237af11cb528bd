"""Settings of the example project: Django's auth on the coatcheck session engine.

Only what the example needs. The session lines are the ones to copy: ``SESSION_ENGINE``, the
``COATCHECK`` dict, the app in ``INSTALLED_APPS`` (so ``migrate`` creates the store's tables)
and coatcheck's ``SessionMiddleware`` in place of Django's.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development default only: set DJANGO_SECRET_KEY (32 random bytes or more) anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example only: not a secret, replace it!")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    # For manage.py clearsessions; its own table stays empty.
    "django.contrib.sessions",
    "coatcheck.contrib.django",
    "accounts",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "coatcheck.contrib.django.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "project.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"},
}
USE_TZ = True

SESSION_ENGINE = "coatcheck.contrib.django"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14  # Django's default: two weeks idle
SESSION_COOKIE_SECURE = not DEBUG
COATCHECK = {
    "STORE": os.environ.get("COATCHECK_STORE", f"sqlite:///{BASE_DIR / 'sessions.sqlite3'}"),
    # Two tabs of one user change different keys at once and both changes stay.
    "CONCURRENCY": "merge",
    # However active, a session ends a day after log in.
    "ABSOLUTE_TIMEOUT": 24 * 60 * 60,
}
