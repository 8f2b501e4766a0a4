"""Reads values the way GlitchTip does, with the real django-environ, for test/lint-oracle.test.ts.

One JSON object per input line: {"reader": "email" | "database" | "redis" | "str", "key": ..., "value": ...}.
One JSON object per output line, in the same order: {"ok": false, "error": <exception class>} or, for the
URL readers, {"ok": true, "user", "password", "host", "port", "database"} and, for "str",
{"ok": true, "same": <whether the value read is the value stored>}. Run with PYTHONPATH pointing at the
extracted python3-django-environ (scripts/lint-oracle/django-environ.sh).
"""
import json
import sys
from urllib.parse import unquote

import environ


def read(reader, key, value):
    env = environ.Env()
    env.ENVIRON = {key: value}  # the process environment GlitchTip would see, and nothing else
    if reader == "str":
        return {"same": env.str(key) == value}
    if reader == "email":  # settings.py: env.email_url("EMAIL_URL")
        c = env.email_url(key)
        parts = c["EMAIL_HOST_USER"], c["EMAIL_HOST_PASSWORD"], c["EMAIL_HOST"], c["EMAIL_PORT"], c["EMAIL_FILE_PATH"]
    elif reader == "database":  # settings.py: env.db("DATABASE_URL")
        c = env.db(key)
        parts = c["USER"], c["PASSWORD"], c["HOST"], c["PORT"], c["NAME"]
    else:  # env.str, then redis-py / valkey-py from_url: urlparse + unquote
        u = env.url(key)
        parts = unquote(u.username or ""), unquote(u.password or ""), u.hostname, u.port, unquote(u.path[1:])
    user, password, host, port, database = parts
    return {
        "user": user or "",
        "password": password or "",
        "host": host or "",
        "port": None if port in (None, "") else int(port),
        "database": database or "",
    }


for line in sys.stdin:
    request = json.loads(line)
    try:
        answer = {"ok": True, **read(request["reader"], request["key"], request["value"])}
    except Exception as error:  # noqa: BLE001 - every failure of the reader is an answer
        answer = {"ok": False, "error": type(error).__name__}
    sys.stdout.write(json.dumps(answer) + "\n")
