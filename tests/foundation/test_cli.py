"""The `exchange` command line."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import main


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"EXCHANGE_DATABASE_URL": database_url, "EXCHANGE_DATA_DIR": str(tmp_path / "data")}


def test_db_upgrade_is_idempotent(env: dict[str, str]) -> None:
    for _ in range(2):
        result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
        assert result.exit_code == 0, result.output
        assert "up to date" in result.output


def test_users_create_makes_a_platform_admin_and_refuses_a_duplicate(env: dict[str, str]) -> None:
    args = ["users", "create", "root-admin", "--display-name", "Root", "--role", "admin"]
    created = CliRunner().invoke(main, [*args, "--password", "long-enough-1"], env=env)
    assert created.exit_code == 0, created.output
    assert "created user root-admin" in created.output

    again = CliRunner().invoke(main, [*args, "--password", "long-enough-1"], env=env)
    assert again.exit_code != 0
    assert "already taken" in again.output


def test_users_create_explains_a_bad_role(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main,
        [
            "users",
            "create",
            "x-user",
            "--display-name",
            "X",
            "--role",
            "wizard",
            "--password",
            "long-enough-1",
        ],
        env=env,
    )
    assert result.exit_code != 0
    assert "unknown role 'wizard'" in result.output


def test_keys_rotate_signs_with_a_new_key_and_keeps_the_old_one_published(
    env: dict[str, str],
) -> None:
    from api.settings import Settings

    data_dir = Path(env["EXCHANGE_DATA_DIR"])
    before = Settings(data_dir=data_dir).keyring.active.kid
    result = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert result.exit_code == 0, result.output
    keyring = Settings(data_dir=data_dir).keyring
    assert keyring.active.kid != before
    assert result.output.strip().endswith(keyring.active.kid)
    assert {key["kid"] for key in keyring.jwks()["keys"]} == {before, keyring.active.kid}
