"""``python -m simulator --host 127.0.0.1 --port 8701 --secret S``

The secret comes from ``--secret``, else from ``SENTINEL_CHANNEL_SECRET``, else the
development default of the platform's settings (with a warning). Logs one line per event
(submit, query, step, callback attempt, rejected request, admin action).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import uvicorn

from simulator.app import create_app
from simulator.engine import DEFAULT_RETRY_DELAYS
from simulator.scripts import DEFAULT_SCENARIO, SCENARIOS

DEV_SECRET = "dev-channel-secret"  # the default of sentinel.settings.Settings.channel_secret
SECRET_ENV = "SENTINEL_CHANNEL_SECRET"


def _delays(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("comma-separated seconds, e.g. 0.5,1,2,4,8") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("delays must not be negative")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="Payout channel simulator (generic bank protocol)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8701, help="port (default 8701)")
    parser.add_argument("--secret", default=None, help=f"HMAC secret (default: ${SECRET_ENV})")
    parser.add_argument("--default-scenario", default=DEFAULT_SCENARIO, choices=sorted(SCENARIOS))
    parser.add_argument(
        "--retry-delays",
        type=_delays,
        default=list(DEFAULT_RETRY_DELAYS),
        help="waits between callback attempts, comma-separated seconds (default 0.5,1,2,4,8)",
    )
    parser.add_argument("--callback-timeout", type=float, default=5.0, help="per-attempt timeout, seconds")
    parser.add_argument("--no-admin", action="store_true", help="do not serve the /_sim admin endpoints")
    parser.add_argument(
        "--admin-any-host", action="store_true", help="serve /_sim to any client, not only loopback ones"
    )
    parser.add_argument(
        "--keys",
        default=None,
        help="JSON file of test keys (simulator.keys; made when missing): also speak the native protocols of "
        "Alipay, WeChat Pay, Stripe and ISO 20022 under /alipay, /wechat, /stripe, /iso20022",
    )
    parser.add_argument(
        "--platform-url",
        default="http://127.0.0.1:8000",
        help="the platform gateway's base URL, for webhooks configured at the provider (Stripe)",
    )
    parser.add_argument("--access-log", action="store_true", help="also log every HTTP request (uvicorn)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    log = logging.getLogger("simulator")
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        secret = DEV_SECRET
        log.warning("no --secret and no %s: using the development secret", SECRET_ENV)
    dialects = []
    if args.keys:
        from pathlib import Path

        from simulator.dialects.registry import build_dialects
        from simulator.keys import load_or_generate

        dialects = build_dialects(load_or_generate(Path(args.keys)), args.platform_url)
        log.info("native protocols: %s", ", ".join(d.name for d in dialects))
    app = create_app(
        secret,
        default_scenario=args.default_scenario,
        retry_delays=args.retry_delays,
        callback_timeout_s=args.callback_timeout,
        admin=not args.no_admin,
        admin_any_host=args.admin_any_host,
        dialects=dialects,
    )
    log.info("listening on http://%s:%d", args.host, args.port)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        log_config=None,  # keep the basicConfig format above
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
