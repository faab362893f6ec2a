"""``smtpx probe``'s human output: the report as aligned lines, with the server's and the
certificates' text made printable (a hostile server may send terminal escapes)."""

from __future__ import annotations

from typing import Any, TextIO

__all__ = ["print_human"]


def _printable(text: object) -> str:
    """*text* with control characters escaped: a server's reply or a certificate field
    must not be able to drive the terminal (escape sequences)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def print_human(report: dict[str, Any], out: TextIO) -> None:
    def line(label: str, value: object) -> None:
        out.write(f"{label:<16}{_printable(value)}".rstrip() + "\n")

    target = report["target"]
    where = target["host"] if target["port"] is None else f"{target['host']}:{target['port']}"
    line("server", f"{where} ({'LMTP' if target['lmtp'] else 'SMTP'}, TLS: {target['tls']})")
    if report["greeting"] is not None:
        line("greeting", f"{report['greeting']['code']} {report['greeting']['text']}")
    for key, label in (("ehlo", "EHLO"), ("ehlo_after_tls", "EHLO after TLS")):
        ehlo = report[key]
        if ehlo is None:
            continue
        line(label, f"{ehlo['code']} {ehlo['hostname']}" + ("" if ehlo["esmtp"] else " (HELO)"))
        for extension in ehlo["extensions"]:
            line("", "  " + extension)
        line("  SIZE", "not advertised" if ehlo["size"] is None else ehlo["size"] or "no limit")
        line("  AUTH", " ".join(ehlo["auth"]) if ehlo["auth"] else "not offered")
    tls = report["tls"]
    if tls is not None:
        if tls["error"] is not None:
            line("TLS", f"{tls['mode']}: {tls['error']}")
        else:
            line("TLS", f"{tls['mode']}, {tls['version']}, {tls['cipher']}")
            verdict = "yes" if tls["verified"] else f"no ({tls['verify_error']})"
            line("verified", verdict)
            if tls["hostname"] is None:
                line("host name", "not checked (a unix socket; see --tls-name)")
            else:
                match = "matches" if tls["hostname_match"] else "does not match"
                line("host name", f"{tls['hostname']}: {match}")
            for index, cert in enumerate(tls["chain"]):
                if "error" in cert:
                    line(f"  [{index}]", cert["error"])
                    continue
                line(f"  [{index}] subject", cert["subject"])
                line("      issuer", cert["issuer"])
                if cert["sans"]:
                    line("      SANs", ", ".join(cert["sans"]))
                line(
                    "      valid",
                    f"{cert['not_before']} to {cert['not_after']} "
                    f"({cert['expires_in_days']} days left)",
                )
    if report["checks"]:
        out.write("checks\n")
        for name, check in report["checks"].items():
            out.write(f"  {check['result']:<5} {name:<24} {_printable(check['detail'])}\n")
