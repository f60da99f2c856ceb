"""The receipt secret never reaches the gateway's access log (issue #11, item 7; R8, R22).

Aliyun and Tencent receipts carry SENTINEL_RECEIPTS_TOKEN in the URL path (they can neither
sign nor send a header of ours). The gateway runs here as in production, a uvicorn process
with its default logging (--factory gateway.app:app), and the lines it writes for receipt
requests show the path with the token redacted."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from gateway.access_log import REDACTED, redact
from sentinel.settings import ROOT
from tests.support.common import free_port

TOKEN = "rcpt-Secret-9f8e7d6c5b4a"


def test_redact_keeps_the_route_and_the_query():
    assert (
        redact(f'"POST /v1/receipts/aliyun/{TOKEN}?x=1 HTTP/1.1" 200')
        == f'"POST /v1/receipts/aliyun/{REDACTED}?x=1 HTTP/1.1" 200'
    )
    assert redact(f"/v1/receipts/tencent/{TOKEN}") == f"/v1/receipts/tencent/{REDACTED}"
    assert (
        redact("/v1/receipts/twilio?notice_key=W1/DETECTED/1/sms")
        == "/v1/receipts/twilio?notice_key=W1/DETECTED/1/sms"
    )


def test_the_access_log_of_a_receipt_request_does_not_contain_the_secret(tmp_path):  # R22
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        SENTINEL_DEV_MODE="1",
        SENTINEL_RECEIPTS_TOKEN=TOKEN,
        SENTINEL_DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
    )
    log = (tmp_path / "gateway.log").open("w+")
    # --lifespan off: the receipt routes need only the database, not Temporal
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "gateway.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):  # start-up: up to 30 s on a loaded machine
            try:
                httpx.get(f"{base}/openapi.json", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the gateway exited"
                time.sleep(0.1)
        ok = httpx.post(f"{base}/v1/receipts/aliyun/{TOKEN}", json=[], timeout=10)
        assert ok.status_code == 200 and ok.json()["code"] == 0
        assert httpx.post(f"{base}/v1/receipts/tencent/{TOKEN}?x=1", json=[], timeout=10).status_code == 200
        assert httpx.post(f"{base}/v1/receipts/aliyun/{TOKEN}x", json=[], timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log.seek(0)
    text = log.read()
    lines = [ln for ln in text.splitlines() if "/v1/receipts/" in ln]
    assert len(lines) == 3, text  # the access log lines were written ...
    assert f'"POST /v1/receipts/aliyun/{REDACTED} HTTP/1.1" 200' in lines[0]
    assert f"/v1/receipts/tencent/{REDACTED}?x=1" in lines[1] and " 401" in lines[2]
    assert TOKEN not in text  # ... and the secret is in none of them
