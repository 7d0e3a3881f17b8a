"""Storage URLs that can be printed: the password of ``user:password@host`` and of a
``password=`` query parameter replaced, also inside a database driver's message; and
whether a URL names a database in memory. No optuna: any command may print a URL."""
from __future__ import annotations

import re
from urllib.parse import unquote


def redact(url: str) -> str:
    """The storage URL with any password replaced (safe to print): the one in
    ``user:password@host`` and a ``password=`` query parameter."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        if ":" in cred:
            url = f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


def scrub(text: str, url: str) -> str:
    """``text`` (say, a database driver's error message) with the URL and every form of
    its password replaced, so it can be printed."""
    text = text.replace(url, redact(url))
    secrets = set()
    if "://" in url and "@" in url.split("://", 1)[1]:
        cred = url.split("://", 1)[1].rsplit("@", 1)[0]
        if ":" in cred:
            secrets.add(cred.split(":", 1)[1])
    secrets.update(re.findall(r"(?i)[?&]password=([^&]*)", url))
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        for form in {secret, unquote(secret)}:
            text = text.replace(form, "***")
    return text


def in_memory(url: str) -> bool:
    """Whether a SQLite URL names a database in memory (sqlite://, sqlite:///,
    sqlite:///:memory:, or a file: URI with mode=memory): a study there vanishes with
    the process."""
    if not url.startswith("sqlite:"):
        return False
    rest = url[len("sqlite:"):]
    if rest == "//" or rest.startswith("//?"):
        return True
    path = rest[3:].split("?", 1)[0] if rest.startswith("///") else None
    return path in ("", ":memory:") or bool(re.search(r"(?i)[?&]mode=memory(&|$)", url))
