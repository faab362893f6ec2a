"""Django's email over smtpx: ``EMAIL_BACKEND = "smtpx.django.EmailBackend"``.

A drop-in replacement for ``django.core.mail.backends.smtp.EmailBackend`` that sends
through a pool of reused connections (``smtpx.Pool``): one pool per configuration, shared by
every backend instance of the process, so that ``send_mail`` in one request reuses the
connection the previous request opened, and a connection the server closed while idle is
replaced without losing the message.  Each message sent gets its per-recipient result as
``message.smtpx_result`` (a ``smtpx.PoolResult``).

Settings: Django's ``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``,
``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``, ``EMAIL_TIMEOUT``,
``EMAIL_SSL_CERTFILE`` and ``EMAIL_SSL_KEYFILE`` (plus ``SMTPX_EMAIL_OPTIONS`` for smtpx's
own options), or Django 6.1's ``MAILERS``::

    MAILERS = {
        "default": {
            "BACKEND": "smtpx.django.EmailBackend",
            "OPTIONS": {"url": "smtp+starttls://mail.example.org", "policy": "strict",
                        "username": "app", "password": "...", "max_connections": 4},
        },
    }

``docs/django.md`` describes every option.
"""

from __future__ import annotations

from ._backend import EmailBackend, close_pools

__all__ = ["EmailBackend", "close_pools"]
