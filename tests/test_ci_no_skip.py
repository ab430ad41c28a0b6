"""Under CI=true a skipped test fails (tests/conftest.py): CI cannot pass by skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_skip_fails_under_ci_only(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n"
    )
    (tmp_path / "test_tool.py").write_text(
        "import shutil\nimport pytest\n\n"
        "@pytest.mark.skipif(True, reason='needs a tool')\ndef test_marked():\n    pass\n\n"
        "def test_called():\n    pytest.skip('needs another tool')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CI", None)

    def pytest_run(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
             "-p", "no:randomly", "-p", "no:hypothesispytest", str(tmp_path)],
            cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    local = pytest_run()
    assert local.returncode == 0 and "2 skipped" in local.stdout, local.stdout
    ci = pytest_run(CI="true")
    # The marker skips at set-up (an error), the call at run time (a failure).
    assert ci.returncode == 1 and "1 failed, 1 error" in ci.stdout, ci.stdout
    assert "skipped under CI=true, where nothing may skip: Skipped: needs a tool" in ci.stdout
    assert "needs another tool" in ci.stdout
