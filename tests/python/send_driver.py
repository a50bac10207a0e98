"""Sends one purge through a shipped Python sender and prints what happened, as JSON.

Run by tests/python_signer.rs with one argument, a JSON object:

    via        "client" (send_invalidation), "django" (cachegate_signals.send_now) or
               "fastapi" (cachegate_dep.send_now)
    url, secret, payload, timeout, retries, raise (bool)
    tick       when set, the signing clock starts at this unix time and advances 10 s per
               reading, so each attempt's signature shows whether it was made anew

Django and FastAPI are not needed: the few names the integrations import from them are
stood in for here, since what is tested is the sending, not the frameworks.

Prints {"outcome": "ok" | "logged" | "raised", "answer", "error", "elapsed", "records"} where
records are the log records of the "cachegate" logger as [level, message].
"""

import json
import logging
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATIONS = os.path.join(HERE, "..", "..", "deploy", "integrations")


def stub(name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def main():
    config = json.loads(sys.argv[1])
    sys.path[:0] = [
        INTEGRATIONS,
        os.path.join(INTEGRATIONS, "django"),
        os.path.join(INTEGRATIONS, "fastapi"),
    ]
    settings = types.SimpleNamespace(
        CACHEGATE_WEBHOOK_URL=config["url"],
        CACHEGATE_WEBHOOK_SECRET=config["secret"],
        CACHEGATE_WEBHOOK_TIMEOUT=config["timeout"],
        CACHEGATE_WEBHOOK_RETRIES=config["retries"],
        CACHEGATE_WEBHOOK_RAISE=config["raise"],
    )
    for name, value in vars(settings).items():
        os.environ[name] = "true" if value is True else "" if value is False else str(value)
    no_signal = types.SimpleNamespace(connect=lambda *args, **kwargs: None)
    stub("django")
    stub("django.conf", settings=settings)
    stub("django.db", transaction=types.SimpleNamespace(on_commit=lambda f, using=None: f()))
    stub("django.db.models")
    stub("django.db.models.signals", post_save=no_signal, post_delete=no_signal)
    stub("fastapi", BackgroundTasks=object)

    import cachegate_client

    if config.get("tick") is not None:
        readings = iter(range(config["tick"], 2**62, 10))
        cachegate_client.time = types.SimpleNamespace(
            time=lambda: next(readings), monotonic=time.monotonic, sleep=time.sleep
        )

    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append([record.levelname, record.getMessage()])

    logging.getLogger("cachegate").addHandler(Keep())
    logging.getLogger("cachegate").setLevel(logging.DEBUG)

    result = {"outcome": "ok", "answer": None, "error": None}
    started = time.monotonic()
    try:
        if config["via"] == "client":
            result["answer"] = cachegate_client.send_invalidation(
                config["url"],
                config["secret"],
                config["payload"],
                timeout=config["timeout"],
                retries=config["retries"],
            )
        elif config["via"] == "django":
            import cachegate_signals

            cachegate_signals.send_now(config["payload"])
        elif config["via"] == "fastapi":
            import cachegate_dep

            cachegate_dep.send_now(config["payload"])
        else:
            raise SystemExit("unknown via %r" % config["via"])
    except cachegate_client.CachegateError as e:
        result.update(outcome="raised", error=str(e), status=e.status, attempts=e.attempts)
    result["elapsed"] = time.monotonic() - started
    if result["outcome"] == "ok" and any(level == "ERROR" for level, _ in records):
        result["outcome"] = "logged"
    result["records"] = records
    print(json.dumps(result))


if __name__ == "__main__":
    main()
