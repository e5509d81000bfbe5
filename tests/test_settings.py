"""One frozen settings object from environment variables: defaults, validation, documentation."""

from __future__ import annotations

import pytest

from streamproc.settings import SPEC, Settings, SettingsError
from tests.conftest import ROOT


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092" and s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.quote_max_age_s == 30 and s.app_id == "streamproc" and s.redis_prefix == "sp:"
    assert s.topics.orders == "orders" and s.web_host == "127.0.0.1"


def test_namespace_prefixes_topics_group_and_keys() -> None:
    s = Settings.from_env({"STREAMPROC_NAMESPACE": "blue"})
    assert s.topics.quotes == "blue.quotes" and s.app_id == "blue.streamproc" and s.redis_prefix == "blue:sp:"
    assert s.topics.logical("blue.deadletter") == "deadletter"


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("STREAMPROC_EVAL_INTERVAL_MS", "0", "positive integer"),
        ("STREAMPROC_EVAL_INTERVAL_MS", "fast", "invalid literal"),
        ("STREAMPROC_QUOTE_MAX_AGE_S", "-1", "> 0"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("REDIS_URL", "http://x", "redis://"),
        ("STREAMPROC_NAMESPACE", "a b", "letters"),
        ("STREAMPROC_WEB_PORT", "70000", "TCP port"),
        ("STREAMPROC_LOG_LEVEL", "loud", "debug, info"),
    ],
)
def test_bad_values_fail_naming_the_variable(var: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({var: value})
    assert var in str(err.value) and words in str(err.value)


def test_settings_are_frozen_and_passwords_redacted() -> None:
    s = Settings.from_env({"REDIS_URL": "redis://:hunter2@db:6379/0"})
    with pytest.raises(AttributeError):
        s.namespace = "x"  # type: ignore[misc]
    assert "hunter2" not in str(s.redacted())


def test_readme_documents_every_variable_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text()
    for var, default, _parse, _help in SPEC.values():
        assert f"`{var}`" in readme, f"README lacks {var}"
        if default:
            assert f"| `{var}` | `{default}` |" in readme, (
                f"README's row for {var} lacks its default {default!r}"
            )
