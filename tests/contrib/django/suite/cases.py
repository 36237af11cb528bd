"""Django's session tests for coatcheck's engine (collected only by test_django_suite.py's
subprocess, where ``sessions_tests`` is the package fetched from Django's sdist).

The Django classes are reached through their module, so that only these subclasses are
collected here, never Django's own engines' tests.
"""

from __future__ import annotations

import sessions_tests.tests as django_tests
from django.test import SimpleTestCase, override_settings

from coatcheck.contrib.django import SessionStore


class CoatcheckSessionTests(django_tests.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    """Every test of Django's SessionTestsMixin, on ``coatcheck.contrib.django``."""

    backend = SessionStore


@override_settings(SESSION_ENGINE="coatcheck.contrib.django")
class CoatcheckMiddlewareTests(django_tests.SessionMiddlewareTests):  # type: ignore[misc]
    """Django's SessionMiddlewareTests with ``SESSION_ENGINE`` pointed at coatcheck."""
