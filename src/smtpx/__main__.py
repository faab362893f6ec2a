"""``python -m smtpx``: the same as the ``smtpx`` command."""

import sys

from smtpx.cli import main

if __name__ == "__main__":
    sys.exit(main())
