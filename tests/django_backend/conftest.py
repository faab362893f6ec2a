"""Django under test: settings configured once, the integration suite's Postfix, and a
``mail`` fixture that configures the smtpx backend through Django's ``EMAIL_*`` settings
(Django 5.2 and 6.1) or through ``MAILERS`` (Django 6.1).

scripts/test.sh runs this directory once with Django 5.2 (Python 3.11) and once with
Django 6.1 (Python 3.13); the main runs leave it out (``--ignore``), having no Django.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

try:
    import django
except ImportError:  # a developer's venv without Django: CI always has it
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        raise
    collect_ignore_glob = ["test_*.py"]
else:
    from django.conf import settings
    from django.test.utils import override_settings

    import smtpx.django
    from integration.conftest import postfix
    from integration.servers import PostfixServer

    if not settings.configured:
        # No EMAIL_* here: Django 6.1 warns about each one set (deprecated), and the
        # tests run with warnings as errors; the ``mail`` fixture sets them per test.
        settings.configure(
            DEFAULT_FROM_EMAIL="App <app@client.test>",
            INSTALLED_APPS=[],
            USE_TZ=True,
            EMAIL_SUBJECT_PREFIX="",
        )
        django.setup()

    HAS_MAILERS = django.VERSION >= (6, 1)
    # Django 6.1 deprecates the EMAIL_* settings and get_connection(): the "settings"
    # configuration is the one Django 5.2 users have, and it warns on 6.1.
    SETTINGS_PARAM = pytest.param(
        "settings",
        marks=[
            pytest.mark.filterwarnings(
                r"ignore::django.utils.deprecation.RemovedInDjango2028Warning"
            )
        ]
        if HAS_MAILERS
        else [],
    )
    CONFIGURATIONS = [SETTINGS_PARAM, "mailers"] if HAS_MAILERS else [SETTINGS_PARAM]

    @dataclass
    class Mail:
        """How the current test's backend is configured, and a way to get one."""

        kind: str  # "settings" or "mailers"
        configure: Callable[..., None]

        def backend(self) -> Any:
            if self.kind == "mailers":
                from django.core.mail import mailers

                return mailers.default
            from django.core.mail import get_connection

            return get_connection()

    @pytest.fixture(params=CONFIGURATIONS)
    def mail(request: pytest.FixtureRequest) -> Iterator[Mail]:
        """``mail.configure(host=..., port=..., **options)`` sets the backend up for the
        rest of the test; ``mail.backend()`` returns a backend instance."""
        overrides: list[Any] = []

        def configure(**options: Any) -> None:
            while overrides:
                overrides.pop().disable()
            smtpx.django.close_pools()
            if request.param == "mailers":
                override = override_settings(
                    MAILERS={
                        "default": {"BACKEND": "smtpx.django.EmailBackend", "OPTIONS": options}
                    }
                )
            else:
                names = {
                    "host": "EMAIL_HOST",
                    "port": "EMAIL_PORT",
                    "username": "EMAIL_HOST_USER",
                    "password": "EMAIL_HOST_PASSWORD",
                    "use_tls": "EMAIL_USE_TLS",
                    "use_ssl": "EMAIL_USE_SSL",
                    "timeout": "EMAIL_TIMEOUT",
                }
                values = {names[k]: v for k, v in options.items() if k in names}
                extra = {k: v for k, v in options.items() if k not in names}
                override = override_settings(
                    EMAIL_BACKEND="smtpx.django.EmailBackend", SMTPX_EMAIL_OPTIONS=extra, **values
                )
            override.enable()
            overrides.append(override)

        try:
            yield Mail(request.param, configure)
        finally:
            while overrides:
                overrides.pop().disable()
            smtpx.django.close_pools()

    __all__ = ["Mail", "PostfixServer", "postfix"]
