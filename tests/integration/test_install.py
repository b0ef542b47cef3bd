"""The TimescaleDB installer's guard rails: each fault a clear message and a non-zero exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "infra" / "install-timescaledb.sh"


def run(
    env: dict[str, str], user: str | None = None, script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASBUILT_")}
    return subprocess.run(
        ["bash", str(script)],
        env=base | env,
        user=user,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def public_copy() -> Iterator[Path]:
    """The script where an unprivileged user can read it (the checkout may be root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="asbuilt-install-"))
    folder.chmod(0o755)
    copy = folder / SCRIPT.name
    shutil.copy(SCRIPT, copy)
    copy.chmod(0o755)
    yield copy
    shutil.rmtree(folder)


def test_an_existing_timescaledb_needs_no_install() -> None:
    result = run({"ASBUILT_DB_DSN": "postgresql://u:p@db.example:5432/x"})
    assert result.returncode == 0
    assert "nothing to install" in result.stderr


def test_an_unsupported_os_is_named_with_the_way_out(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('ID=ubuntu\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n')
    result = run({"ASBUILT_OS_RELEASE": str(release)})
    assert result.returncode == 2
    assert "unsupported OS 'Ubuntu 24.04 LTS'" in result.stderr
    assert "ASBUILT_DB_DSN" in result.stderr


def test_without_root_it_says_so(public_copy: Path) -> None:
    result = run({}, user="nobody", script=public_copy)
    assert result.returncode != 0
    assert "root" in result.stderr or "sudo" in result.stderr


def test_a_second_run_is_a_quick_check_that_reports_the_bindir() -> None:
    result = run({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].startswith("PG_BINDIR=/usr/lib/postgresql/")
    assert "apt-get" not in result.stderr  # installed already: no apt, no network
