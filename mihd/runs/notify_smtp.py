"""A mail hook: the event as a plain-text message through an SMTP server (standard library smtplib).

On a cluster that is usually the site relay (localhost:25 through the node's postfix, no login) or the
institution's relay (port 587, STARTTLS, a login whose password sits in a file only its owner reads).
"""

from __future__ import annotations

import json
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from .notify_config import smtp_port
from .notify_event import summary


def message(smtp: dict, event: dict) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[mihd] {summary(event)}"[:200]
    msg["From"] = smtp["from"]
    msg["To"] = ", ".join(smtp["to"]) if isinstance(smtp["to"], list) else smtp["to"]
    lines = [summary(event), ""] + [f"{k}: {'-' if v is None else v}" for k, v in event.items()]
    msg.set_content("\n".join(lines + ["", json.dumps(event, indent=1)]) + "\n")
    return msg


def _session(smtp: dict, timeout: float) -> smtplib.SMTP:
    """A connected, greeted (and, when asked, encrypted and logged-in) session."""
    server = smtplib.SMTP(smtp["host"], smtp_port(smtp), timeout=timeout)
    try:
        server.ehlo()
        if smtp.get("starttls"):
            server.starttls(context=ssl.create_default_context())
            server.ehlo()
        if smtp.get("user"):
            server.login(smtp["user"], Path(smtp["password_file"]).expanduser().read_text().strip())
        return server
    except BaseException:
        server.close()
        raise


def _failure(exc: Exception) -> str:
    """The server's refusal, a TLS failure or an unreachable server, in a few words (SMTPException and
    SSLError are OSErrors too: asked first)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        said = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"refused: {exc.smtp_code} {said}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"recipients refused: {', '.join(exc.recipients)}"
    if isinstance(exc, smtplib.SMTPException):
        return f"refused: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    return f"cannot reach the server: {exc.strerror or exc}"


def send_mail(smtp: dict, event: dict, timeout: float) -> tuple[bool, str]:
    """(whether the server took the message, what happened in a few words)."""
    try:
        server = _session(smtp, timeout)
        try:
            server.send_message(message(smtp, event))
        finally:
            server.quit()
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return False, " ".join(_failure(exc).split())
    return True, "sent"


def probe(smtp: dict, timeout: float = 5.0) -> str | None:
    """Why this server would not take mail now (down, refusing, TLS or login failing), or None."""
    try:
        _session(smtp, timeout).quit()
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return " ".join(_failure(exc).split())
    return None
