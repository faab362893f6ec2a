"""An embedded SMTP/LMTP sink server for tests and demos.

Needs the ``testing`` extra (``pip install 'smtpx[testing]'``), which brings
aiosmtpd and trustme.

Examples:
    >>> import smtplib
    >>> from smtpx.testing import SinkServer
    >>> with SinkServer(starttls=True, auth={"alice": "s3cret"}) as server:
    ...     with smtplib.SMTP(server.host, server.port, "localhost") as client:
    ...         _ = client.starttls(context=server.client_context())
    ...         _ = client.login("alice", "s3cret")
    ...         refused = client.sendmail("alice@example.org", ["bob@example.org"], b"hi\\r\\n")
    ...     received = server.wait_for_messages(1)[0]
    >>> received.content, received.tls, received.auth_login
    (b'hi\\r\\n', True, 'alice')
"""

try:
    import aiosmtpd  # noqa: F401
    import trustme  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        f"smtpx.testing needs {exc.name or 'aiosmtpd and trustme'}: "
        "install the extra with pip install 'smtpx[testing]'",
        name=exc.name,
    ) from exc

from ._faults import MAX_DELAY, Fault
from ._handler import RcptFilter
from ._message import SinkMessage
from ._server import SinkServer

__all__ = ["MAX_DELAY", "Fault", "RcptFilter", "SinkMessage", "SinkServer"]
