"""Settings: loaded once, validated, with errors that name the file, the key and the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def config_copy(tmp_path: Path, text: str | None = None) -> Path:
    cdir = tmp_path / "config"
    shutil.copytree(ROOT / "config", cdir)
    if text is not None:
        (cdir / "settings.yaml").write_text(text, encoding="utf-8")
    return cdir


def test_sample_config_loads_and_is_immutable() -> None:
    s = load_settings(ROOT / "config", environ={})
    assert s.company.x_handle == "NorthbankHelp"
    assert s.redis.url is None  # embedded Redis by default
    assert s.x.rules
    with pytest.raises(Exception, match="frozen"):
        s.ingest.batch_size = 3  # type: ignore[misc]


def test_environment_overrides_nested_keys_with_typed_values() -> None:
    s = load_settings(
        ROOT / "config",
        environ={"TRIAGE_INGEST__BATCH_SIZE": "1000", "TRIAGE_X__MODE": "mentions"},
    )
    assert s.ingest.batch_size == 1000
    assert s.x.mode == "mentions"


def test_redis_url_from_environment_wins() -> None:
    s = load_settings(ROOT / "config", environ={"REDIS_URL": "redis://127.0.0.1:6379/3"})
    assert s.redis.url == "redis://127.0.0.1:6379/3"


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"TRIAGE_INGEST__BATCH_SIZE": "lots"}, ["TRIAGE_INGEST__BATCH_SIZE", "ingest.batch_size"]),
        ({"TRIAGE_INGEST__BATCH_SIZE": "0"}, ["ingest.batch_size", "greater than or equal to 1"]),
        ({"TRIAGE_X__MODE": "firehose"}, ["TRIAGE_X__MODE", "x.mode", "'firehose'"]),
        ({"TRIAGE_X__API_BASE_URL": "ftp://x"}, ["x.api_base_url"]),
    ],
)
def test_invalid_environment_value_names_variable_key_and_problem(
    env: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(ROOT / "config", environ=env)
    for name in names:
        assert name in str(err.value)


def test_unknown_key_in_file_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    cdir = config_copy(tmp_path)
    path = cdir / "settings.yaml"
    path.write_text(path.read_text() + "\ningest:\n  batch_sise: 10\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cdir, environ={})
    assert str(path) in str(err.value)
    assert "batch_sise" in str(err.value) and "unknown key" in str(err.value)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    cdir = config_copy(tmp_path, "company:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"settings.yaml: line \d+"):
        load_settings(cdir, environ={})


def test_missing_file_and_missing_required_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path, environ={})
    cdir = config_copy(tmp_path, "ingest: {batch_size: 10}\n")
    with pytest.raises(ConfigError, match="company: required but missing"):
        load_settings(cdir, environ={})


def test_secrets_are_refused_in_files_and_never_shown(tmp_path: Path) -> None:
    cdir = config_copy(tmp_path, "company: {name: N, x_handle: N}\nx:\n  bearer_token: abc\n")
    with pytest.raises(ConfigError, match="secrets belong in the environment"):
        load_settings(cdir, environ={})
    s = load_settings(ROOT / "config", environ={"TRIAGE_X_BEARER_TOKEN": "sekret-value"})
    assert s.secrets.x_bearer_token is not None
    assert s.secrets.x_bearer_token.get_secret_value() == "sekret-value"
    assert "sekret-value" not in repr(s) and "sekret-value" not in str(s)
