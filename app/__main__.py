"""`python -m app [--host H] [--port P]`: run the service with one uvicorn worker."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from app.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Serve models:/<MLSTACK_MODEL_NAME>@<MLSTACK_MODEL_ALIAS> from "
        "MLFLOW_TRACKING_URI. Every setting is an MLSTACK_* environment variable.",
    )
    parser.add_argument("--host", help="listen address (MLSTACK_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (MLSTACK_PORT, default 8080)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return 2

    import uvicorn

    from app.main import create_app

    try:
        application = create_app(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # One worker per pod: replicas scale out, and prometheus-client stays single-process.
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        workers=1,
        access_log=False,  # the service logs one JSON line per request itself
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
