"""docs/configuration.md, generated from the settings model (issue #12, item 7): every
``SENTINEL_*`` variable with its type, default and meaning, what each channel adapter
requires once enabled (read from what ``channels/registry.py`` refuses), and the dev
server's search attributes from the list the code registers. ``python -m starter docs``
writes it (starter/docs_gen.py).

The settings walk is generic: flat fields, nested pydantic models (``SENTINEL_<SECTION>_<NAME>``
or a section model with its own ``env_prefix``) and aliases all give the variable name the
settings loader reads.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import re
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic_settings import BaseSettings

from sentinel.provider_settings import ProviderSection
from sentinel.settings import ROOT, Settings

CONFIGURATION_MD = ROOT / "docs" / "configuration.md"


@dataclass(frozen=True)
class SettingDoc:
    env: str
    section: str
    type_text: str
    default_text: str
    description: str
    secret: bool


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None / Annotated, whether None is allowed)."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _json_shape(annotation: Any) -> str:
    """The JSON an environment variable of this type holds, e.g. ``[["…", "…"], …]``."""
    annotation, _ = _unwrap(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (list, set, frozenset, tuple) and (origin is not tuple or ... in args):
        return f"[{_json_shape(args[0]) if args else '…'}, …]"
    if origin is tuple:
        return "[" + ", ".join(_json_shape(a) for a in args) + "]"
    if origin is dict:
        return "{" + f"{_json_shape(args[0])}: {_json_shape(args[1])}" + "}"
    if annotation in (int, float):
        return "0"
    if annotation is bool:
        return "true"
    return '"…"'


_SCALARS = {
    str: "text",
    int: "integer",
    float: "number",
    bool: "boolean (`true`/`false`, `1`/`0`)",
    Path: "file path",
    SecretStr: "text",
}


def _constraints(field: Any) -> list[str]:
    out = []
    for m in field.metadata:
        for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if getattr(m, attr, None) is not None:
                out.append(f"{sign} {getattr(m, attr)}")
        for attr, word in (("min_length", "at least"), ("max_length", "at most")):
            n = getattr(m, attr, None)
            if n is not None:
                out.append(f"{word} {n} character{'' if n == 1 else 's'}")
        if getattr(m, "pattern", None):
            out.append(f"matching `{m.pattern}`")
    return out


def _type_text(field: Any) -> tuple[str, bool]:
    """(human type, secret?) of a settings field."""
    annotation, optional = _unwrap(field.annotation)
    origin = typing.get_origin(annotation)
    secret = annotation is SecretStr
    if origin in (list, set, frozenset, tuple, dict):
        text = f"JSON `{_json_shape(annotation)}`"
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        text = "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    elif origin is typing.Literal:
        text = "one of " + ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    else:
        text = _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))
    extra = _constraints(field)
    if extra:
        text += ", " + ", ".join(extra)
    if secret:
        text += " (secret)"
    if optional:
        text += "; optional"
    return text, secret


def _default_text(field: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return f"(secret) `{value.get_secret_value()}`"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, (list, tuple, dict, set)):
        return f"`{json.dumps(value if not isinstance(value, set) else sorted(value), ensure_ascii=False)}`"
    if isinstance(value, BaseModel):
        return "(section)"
    text = str(value)
    if isinstance(value, Path) and value.is_absolute() and value.is_relative_to(ROOT):
        text = value.relative_to(ROOT).as_posix()
    return f"`{text}`" if text else '`""` (empty)'


def _sections_from_comments(model: type[BaseModel]) -> dict[str, str]:
    """field name -> the ``# heading`` comment above it in the class source (flat models)."""
    try:
        lines = inspect.getsource(model).splitlines()
    except (OSError, TypeError):
        return {}
    heading, out = "", {}
    for line in lines:
        comment = re.match(r"^    # (.+)$", line)
        field = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
        if comment:
            heading = comment.group(1).strip()
        elif field:
            out[field.group(1)] = heading
    return out


def _model_class(annotation: Any) -> type[BaseModel] | None:
    annotation, _ = _unwrap(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _name_variables(title: str, env_name: Callable[[str], str]) -> str:
    """``field`` in a section title becomes `SENTINEL_..._FIELD`, the variable one sets."""
    return re.sub(r"``(\w+)``", lambda m: f"`{env_name(m.group(1))}`", title)


def _env_name(name: str, field: Any, prefix: str) -> str:
    alias = field.validation_alias or field.alias
    if isinstance(alias, AliasChoices):
        alias = next((c for c in alias.choices if isinstance(c, str)), None)
    if isinstance(alias, str):
        return alias.upper()  # an alias is read as it is, without the prefix
    return (prefix + name).upper()


def walk_settings(
    model: type[BaseModel] = Settings, prefix: str | None = None, section: str = ""
) -> Iterator[tuple[str, str, Any]]:
    """(environment variable, section, field) of every leaf setting, nested models included."""
    if prefix is None:  # the root, or a section model that reads its own prefix
        prefix = str(model.model_config.get("env_prefix") or "")
    delimiter = str(Settings.model_config.get("env_nested_delimiter") or "_")
    headings = _sections_from_comments(model)
    for name, field in model.model_fields.items():
        sub = _model_class(field.annotation)
        if sub is not None:
            title = (sub.__doc__ or "").strip().splitlines()[0].rstrip(".") if sub.__doc__ else name
            if issubclass(sub, ProviderSection):  # name its variables as they are set
                title = _name_variables(title, sub.env_name)
            own_prefix = issubclass(sub, BaseSettings) and sub.model_config.get("env_prefix")
            yield from walk_settings(sub, None if own_prefix else prefix + name + delimiter, title)
            continue
        yield _env_name(name, field, prefix), section or headings.get(name, ""), field


def setting_docs(model: type[BaseModel] = Settings) -> list[SettingDoc]:
    out = []
    for env, section, field in walk_settings(model):
        type_text, secret = _type_text(field)
        out.append(
            SettingDoc(
                env, section, type_text, _default_text(field), (field.description or "").strip(), secret
            )
        )
    return out


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """No SENTINEL_* variable and no .env file in reach: the generated docs describe the
    defaults, never the machine that generated them."""
    saved = dict(os.environ)
    cwd = Path.cwd()
    try:
        for key in list(os.environ):
            if key.upper().startswith("SENTINEL_"):
                del os.environ[key]
        with tempfile.TemporaryDirectory() as empty:
            os.chdir(empty)
            yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def adapter_requirements() -> list[tuple[str, list[str]]]:
    """(variable that enables a channel adapter, the variables it then requires), read from
    what ``channels.registry.build_channels`` refuses: each optional setting is set alone,
    and the variables its refusal names are that adapter's requirements."""
    from channels.registry import build_channels

    docs = {d.env: d for d in setting_docs()}
    out = []
    with clean_environment():
        for env, _section, field in walk_settings():
            _, optional = _unwrap(field.annotation)
            if not optional or field.is_required() or field.get_default() is not None:
                continue
            os.environ[env] = "x"
            try:
                build_channels(Settings(_env_file=None))
            except ValueError as refused:
                named = [n for n in dict.fromkeys(re.findall(r"SENTINEL_[A-Z0-9_]+", str(refused)))]
                if env in named:
                    out.append((env, [n for n in named if n != env and n in docs]))
            except Exception:  # noqa: BLE001 - a dummy value some type refuses: not an enabling setting
                pass
            finally:
                del os.environ[env]
    return out


SETTINGS_HEAD = """# Configuration

<!-- Generated by `python -m starter docs` from sentinel/settings.py, channels/registry.py and
workflows/search_attributes.py; tests/sentinel/test_settings_docs.py fails when this file differs. -->

All settings live in one typed object, `sentinel/settings.py` (pydantic-settings). Each is read
from an environment variable (the names below, all `SENTINEL_*`) or from a `.env` file in the
working directory; an environment variable wins over the `.env` file. `python -m starter settings`
prints the values in force (secrets hidden).

How to read the tables: **type** is what the variable must hold (a list or a mapping is written
as JSON, in the shape shown); **default** is what applies when the variable is not set
(**required** when there is none; *unset* means the feature it belongs to is off); *(secret)*
marks a value that is never logged nor written to workflow history.

Operators change behaviour that must move without a code change in data files instead:
`config/delays.yaml` (delay thresholds, grace, polling per channel and bank), `config/risk_rules.yaml`
(risk rules, R12), `config/notice_policy.yaml` (severity and channels), `config/providers.yaml`
(notice provider routes, [providers.md](providers.md)), `config/outage.yaml` (outage detection,
[analysis.md](analysis.md)), `config/eta.yaml` (the ETA of delay notices from past arrivals, R24),
`sentinel/codes/*.yaml` (the error-code
catalogue, [error-codes.md](error-codes.md)) and `sentinel/templates/*.yaml` (notice wording,
[notices.md](notices.md)). The YAML files under `config/` are re-read when they change; an invalid
edit is refused and the previous version stays in force.

## Minimum for production

Without `SENTINEL_DEV_MODE=1` the gateway and the worker refuse to start while any of these
still holds its public development value, and name each one: `SENTINEL_CHANNEL_SECRET`,
`SENTINEL_LINK_SECRET`, `SENTINEL_USER_TOKEN_SECRET`, `SENTINEL_PAYLOAD_KEYS`,
`SENTINEL_DECISION_SIGNING_KEY`, `SENTINEL_DECISION_PUBLIC_KEYS` (must not trust the development
key), `SENTINEL_API_KEYS_FILE` and `SENTINEL_REVIEWERS_FILE` (the dev files' keys and passwords are
public), `SENTINEL_SUPPORT_PHONE`, `SENTINEL_BRAND_NAME` and `SENTINEL_BRAND_NAME_ZH` (fictional
by default). Point `SENTINEL_DATABASE_URL` at PostgreSQL (`postgresql+psycopg://user:password@host:5432/db`;
the `+psycopg` driver part is required) and `SENTINEL_TEMPORAL_ADDRESS` at your cluster.
`make run`, the dev stack and the tests set `SENTINEL_DEV_MODE=1`; production never does, and
sets its secrets from a secret store ([deployment.md](deployment.md)).

## Callback signatures and their time window

Every channel signs its callbacks (and WeChat Pay its API answers) with a timestamp. The gateway
accepts a signature only when that timestamp is within `SENTINEL_CALLBACK_TOLERANCE_S` seconds of
its own clock (default 300 s, either side): an older one is a replay, a later one a wrong clock.
A callback outside the window is refused with 401 and not acted on; the channel sends it again
and polling finds the answer anyway (R10, R11). It applies to the generic bank protocol, WeChat
Pay, Stripe and ISO 20022; Alipay notifies are dated by Alipay and may be up to
`SENTINEL_ALIPAY_NOTIFY_TOLERANCE_S` old (48 h by default), and at most
`SENTINEL_CALLBACK_TOLERANCE_S` in the future. Keep the hosts' clocks synchronised (NTP); widen
the window only for a channel with a known clock skew.

## Channel adapters: what each needs once enabled

The generic bank protocol is always on. Each native adapter is built when its first variable
is set; the gateway and the worker then refuse to start until every variable it requires is set
too (read from `channels/registry.py`). Docs per channel: [channels/](channels/).

| set this | and then also |
|---|---|
"""

SEARCH_ATTRIBUTES_HEAD = """
## Temporal search attributes

The workflow upserts these typed search attributes (`workflows/search_attributes.py`, R34); a
Temporal namespace must have them registered before the first withdrawal starts. The dev server
of `make run` and of the end-to-end tests registers them at start with these flags of
`temporal server start-dev` (`starter/devstack.py`):

```
{flags}
```

A production cluster registers them once per namespace (`deploy/temporal/create-namespace.sh`
does, [deployment.md](deployment.md)):

```
{commands}
```

| attribute | type |
|---|---|
"""


def search_attributes_markdown() -> str:
    from workflows.search_attributes import ALL_KEYS, cli_flags

    flags = cli_flags()
    pairs = [flags[i + 1] for i in range(0, len(flags), 2)]
    head = SEARCH_ATTRIBUTES_HEAD.format(
        flags=" \\\n".join(f"  --search-attribute {p}" for p in pairs),
        commands="\n".join(
            f"temporal operator search-attribute create --namespace <namespace> --name {n} --type {t}"
            for n, t in (p.split("=", 1) for p in pairs)
        ),
    )
    assert [p.split("=", 1)[0] for p in pairs] == [getattr(k, "name", None) for k in ALL_KEYS]
    rows = [f"| `{n}` | {t} |" for n, t in (p.split("=", 1) for p in pairs)]
    return head + "\n".join(rows) + "\n"


def settings_markdown() -> str:
    docs = setting_docs()
    requirements = adapter_requirements()
    out = [SETTINGS_HEAD.rstrip("\n")]
    for env, needs in requirements:
        out.append(f"| `{env}` | {', '.join(f'`{n}`' for n in needs)} |")
    out.append("\n## Every setting")
    section = None
    for d in docs:
        if d.section != section:
            section = d.section
            out.append(f"\n### {section or 'General'}\n")
            out.append("| variable | type | default | meaning |")
            out.append("|---|---|---|---|")
        out.append(f"| `{d.env}` | {cell(d.type_text)} | {cell(d.default_text)} | {cell(d.description)} |")
    return "\n".join(out) + "\n" + search_attributes_markdown()
