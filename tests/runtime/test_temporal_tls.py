"""The worker, the gateway and the CLI connect to Temporal with mutual TLS when the
certificate settings are set (issue #11 item 5, R22): runtime/client.py ``tls_config``."""

from __future__ import annotations

import pytest
from temporalio.service import TLSConfig

from runtime.client import tls_config
from sentinel.settings import Settings


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_no_certificates_is_a_plain_connection():
    assert tls_config(settings()) is False


def test_client_certificate_key_and_ca_make_mutual_tls(tmp_path):  # R22
    for name in ("worker.pem", "worker.key", "ca.pem"):
        (tmp_path / name).write_bytes(f"-----PEM {name}-----\n".encode())
    tls = tls_config(
        settings(
            temporal_tls_cert=tmp_path / "worker.pem",
            temporal_tls_key=tmp_path / "worker.key",
            temporal_tls_ca=tmp_path / "ca.pem",
            temporal_tls_server_name="temporal",
        )
    )
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"-----PEM worker.pem-----\n"
    assert tls.client_private_key == b"-----PEM worker.key-----\n"
    assert tls.server_root_ca_cert == b"-----PEM ca.pem-----\n" and tls.domain == "temporal"
    only_ca = tls_config(settings(temporal_tls_ca=tmp_path / "ca.pem"))
    assert isinstance(only_ca, TLSConfig) and only_ca.client_cert is None  # server-verified TLS


def test_a_certificate_without_its_key_is_refused(tmp_path):
    (tmp_path / "worker.pem").write_text("x")
    with pytest.raises(ValueError, match="set together"):
        tls_config(settings(temporal_tls_cert=tmp_path / "worker.pem"))
    with pytest.raises(FileNotFoundError):
        tls_config(
            settings(temporal_tls_cert=tmp_path / "missing.pem", temporal_tls_key=tmp_path / "missing.key")
        )
