"""The ``smtpx`` command line (placeholder: the dispatcher lives here once merged)."""
