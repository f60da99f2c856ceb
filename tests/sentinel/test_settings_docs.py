"""Every setting is documented with its default (foundation issue, item 10), and the delay
configuration shipped with the repository is valid (R23, R30). The documentation an integrator
reads is generated (issue #12, item 7): docs/configuration.md from the settings model, the field
tables of docs/gateway.md from the OpenAPI schema, the search attributes from the list the dev
server registers; a committed doc that differs from what ``python -m starter docs`` writes fails
here (R30, R34)."""

from __future__ import annotations

import yaml

from sentinel.notice_policy import load_notice_policy
from sentinel.policy import resolve_tracking_policy, validate_delays_document
from sentinel.settings import ROOT
from starter import docs_api, docs_settings

REGENERATE = "regenerate with: python -m starter docs"


def test_every_setting_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [env for env, _s, _f in docs_settings.walk_settings() if f"`{env}`" not in text]
    assert missing == [], f"document these settings in docs/configuration.md: {missing}"


def test_configuration_doc_is_the_generated_one():
    committed = docs_settings.CONFIGURATION_MD.read_text(encoding="utf-8")
    assert committed == docs_settings.settings_markdown(), f"docs/configuration.md is stale: {REGENERATE}"


def test_gateway_field_tables_are_the_generated_ones():
    committed = docs_api.GATEWAY_MD.read_text(encoding="utf-8")
    assert committed.count(docs_api.API_START) == 1 and committed.count(docs_api.API_END) == 1
    assert committed == docs_api.gateway_markdown(committed), (
        f"docs/gateway.md field tables are stale: {REGENERATE}"
    )


def test_the_status_view_and_inbox_messages_are_in_the_field_tables():
    block = docs_api.api_fields_markdown()
    for model, field in (("StatusOut", "as_of"), ("UserStatusOut", "next_step"), ("MessageOut", "read_at")):
        section = block.split(f"#### {model}\n", 1)[1].split("####", 1)[0]
        assert f"| `{field}` |" in section, (model, field)
    assert "| GET | `/v1/users/{user_id}/inbox` | — | 200 [InboxPage](#inboxpage) |" in block


def test_no_default_is_shown_as_pydantic_undefined():
    text = docs_settings.CONFIGURATION_MD.read_text(encoding="utf-8")
    assert "PydanticUndefined" not in text and "Undefined" not in text
    rows = {
        line.split(" | ")[0].strip("| `"): line
        for line in text.splitlines()
        if line.startswith("| `SENTINEL_")
    }
    # lists and mappings show the JSON shape they take, and their empty default as JSON
    assert '| JSON `{"…": "…"}` | `{}` |' in rows["SENTINEL_WECHAT_PLATFORM_PUBLIC_KEYS"]
    assert '| JSON `[["…", "…"], …]` | `[]` |' in rows["SENTINEL_WECHAT_SCENE_REPORT_INFOS"]
    assert "(secret)" in rows["SENTINEL_CHANNEL_SECRET"]
    assert "`300`" in rows["SENTINEL_CALLBACK_TOLERANCE_S"]


def test_the_walk_handles_required_secret_nested_and_aliased_settings():
    """The generator reads whatever shape the settings take: a required field says so, a
    section model nests under its prefix (or its own env_prefix), an alias is the name."""
    from pydantic import AliasChoices, BaseModel, Field, SecretStr
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Keys(BaseModel):
        """Keys of a provider."""

        token: SecretStr = Field(description="the token")
        pairs: list[tuple[str, str]] = Field(default_factory=list, description="pairs")

    class Own(BaseSettings):
        """A section with its own prefix."""

        model_config = SettingsConfigDict(env_prefix="SENTINEL_OWN_")
        mch_id: str | None = Field(None, description="id")

    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="SENTINEL_")
        url: str = Field(description="where")
        keys: Keys = Field(default_factory=lambda: Keys(token=SecretStr("s")))
        own: Own = Field(default_factory=Own)
        old: int = Field(3, validation_alias=AliasChoices("LEGACY_OLD", "SENTINEL_OLD"), description="n")

    docs = {d.env: d for d in docs_settings.setting_docs(Demo)}
    assert set(docs) == {
        "SENTINEL_URL",
        "SENTINEL_KEYS_TOKEN",
        "SENTINEL_KEYS_PAIRS",
        "SENTINEL_OWN_MCH_ID",
        "LEGACY_OLD",
    }
    assert docs["SENTINEL_URL"].default_text == "**required**"
    assert docs["SENTINEL_KEYS_TOKEN"].default_text == "**required**" and docs["SENTINEL_KEYS_TOKEN"].secret
    assert docs["SENTINEL_KEYS_PAIRS"].type_text == 'JSON `[["…", "…"], …]`'
    assert docs["SENTINEL_KEYS_PAIRS"].section == "Keys of a provider"
    assert docs["SENTINEL_OWN_MCH_ID"].default_text == "unset"


def test_every_native_adapter_lists_what_it_requires():
    """R26: which settings each channel adapter needs once enabled, read from what the
    registry refuses, so the doc cannot promise less than the code demands."""
    found = dict(docs_settings.adapter_requirements())
    assert set(found) == {
        "SENTINEL_ALIPAY_APP_ID",
        "SENTINEL_WECHAT_MCH_ID",
        "SENTINEL_STRIPE_SECRET_KEY",
        "SENTINEL_ISO20022_BASE_URL",
    }
    assert "SENTINEL_WECHAT_PLATFORM_PUBLIC_KEYS" in found["SENTINEL_WECHAT_MCH_ID"]
    assert found["SENTINEL_STRIPE_SECRET_KEY"] == ["SENTINEL_STRIPE_WEBHOOK_SECRET"]
    assert all(found.values())


def test_the_dev_server_search_attribute_flags_are_documented():
    """R34: the flags the dev server gets are the ones the doc shows, from the same list."""
    from workflows.search_attributes import cli_flags

    text = docs_settings.CONFIGURATION_MD.read_text(encoding="utf-8")
    flags = cli_flags()
    for i in range(0, len(flags), 2):
        assert f"{flags[i]} {flags[i + 1]}" in text


def test_shipped_delay_files_are_valid():
    for name in ("delays.yaml", "delays.demo.yaml"):
        validate_delays_document(yaml.safe_load((ROOT / "config" / name).read_text()))


def test_bank_figures_override_channel_figures():
    doc = yaml.safe_load((ROOT / "config" / "delays.yaml").read_text())
    assert resolve_tracking_policy(doc, "alipay", "ABC").delay_threshold_s == 6 * 3600
    assert resolve_tracking_policy(doc, "wechat", "ICBC").delay_threshold_s == 24 * 3600


def test_shipped_notice_policy_is_valid():
    load_notice_policy(yaml.safe_load((ROOT / "config" / "notice_policy.yaml").read_text()))
