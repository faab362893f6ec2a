"""The parts of smtplib's module namespace that are not smtpx's own API.

Programs written for smtplib reach past its documented names: ``from smtplib import
_have_ssl, SMTP`` (a mail library does), ``smtplib.email.utils``, and ``smtplib.socket =
mock_socket`` (CPython's own tests do).  With ``import smtpx as smtplib`` each of these must
still work, so smtpx's module carries smtplib's whole namespace:

- the modules smtplib imports (``base64``, ``copy``, ``email``, ...) as the same module
  objects, imported in ``smtpx/__init__.py``;
- the private helpers ``_addr_only``, ``_fix_eols`` and ``_quote_periods`` (written in
  ``_addresses``) and the ``_have_ssl`` flag below;
- the module globals smtplib reads each time it needs them, so that replacing one changes
  what it does: ``socket``, ``ssl``, ``_MAXLINE`` and ``_MAXCHALLENGE``.  smtpx reads them
  elsewhere (the drivers, the reply parser, the AUTH flow), so ``SmtplibModule`` forwards
  an assignment to each place that reads the name.

The other globals are not forwarded, because smtplib does not read them at call time
either: ``SMTP_PORT`` and ``SMTP_SSL_PORT`` are copied into ``default_port`` when the class
is made and ``LMTP_PORT`` into a default argument, so a program that wants another port
sets ``SMTP.default_port`` (which smtpx reads at connect time, as smtplib does).
"""

from __future__ import annotations

import types
from typing import Final

from . import _clientbase, _flows
from ._protocol import _reply
from ._sync import _client, _variants

__all__ = ["FORWARDED", "SmtplibModule", "have_ssl"]

#: smtplib sets ``_have_ssl`` when ``import ssl`` succeeds, and defines ``SMTP_SSL`` only
#: then.  smtpx imports ``ssl`` unconditionally (certificates are verified by default), so
#: whenever smtpx imports at all, the answer is yes.
have_ssl: Final = True

#: For each smtplib global that programs replace: the (module, name) pairs where smtpx
#: reads it at call time.  ``_MAXLINE`` and ``_MAXCHALLENGE`` are process-wide in smtplib,
#: so they are here too (and reach the asyncio clients, which share the parser and flows).
FORWARDED: Final[dict[str, tuple[tuple[types.ModuleType, str], ...]]] = {
    "socket": ((_client, "socket"), (_variants, "socket")),
    # _clientbase builds the context for the deprecated keyfile/certfile arguments.
    "ssl": ((_client, "ssl"), (_variants, "ssl"), (_clientbase, "ssl")),
    "_MAXLINE": ((_reply, "MAX_LINE"),),
    "_MAXCHALLENGE": ((_flows, "MAX_CHALLENGES"),),
}


class SmtplibModule(types.ModuleType):
    """The class of the ``smtpx`` module: ``smtpx.socket = mock_socket`` (and the other
    names in ``FORWARDED``) reaches the code that reads the name, as it does in smtplib.

    A module cannot define ``__setattr__`` for itself (PEP 562 covers only ``__getattr__``
    and ``__dir__``), so ``smtpx/__init__.py`` sets its module's class to this one.
    """

    def __setattr__(self, name: str, value: object) -> None:
        for module, attribute in FORWARDED.get(name, ()):
            setattr(module, attribute, value)
        super().__setattr__(name, value)
