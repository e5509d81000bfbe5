"""One frozen settings object from environment variables: defaults, validation, documentation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
        ("STREAMPROC_STATE_DIR", "state", "absolute path"),
        ("STREAMPROC_STATE_DIR", "/var/{conf.name}", "brace"),
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


def test_the_configuration_doc_documents_every_variable_with_its_default() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for var, default, _parse, _help in SPEC.values():
        assert f"`{var}`" in doc, f"docs/configuration.md lacks {var}"
        if default:
            assert f"| `{var}` | `{default}` |" in doc, (
                f"docs/configuration.md's row for {var} lacks its default {default!r}"
            )


def test_the_state_dir_is_outside_the_working_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env({}).state_dir == tmp_path / "xdg" / "streamproc"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Settings.from_env({}).state_dir == tmp_path / "home" / ".local" / "state" / "streamproc"
    # a home that cannot hold it (here: under a file; in the image: a user without a home) -> temp dir
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("HOME", str(tmp_path / "file" / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert Settings.from_env({}).state_dir == tmp_path / "tmp" / f"streamproc-{os.getuid()}"
    configured = Settings.from_env({"STREAMPROC_STATE_DIR": str(tmp_path / "mine")})
    assert configured.state_dir == tmp_path / "mine"


def test_a_state_dir_that_cannot_be_written_fails_naming_the_variable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "file", tmp_path / "file" / "below"):
        with pytest.raises(SettingsError) as err:
            Settings.from_env({"STREAMPROC_STATE_DIR": str(bad)})
        assert "STREAMPROC_STATE_DIR" in str(err.value) and "can create or write in" in str(err.value)
