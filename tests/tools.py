"""External programs the tests use: required in CI, skipped with a reason elsewhere."""
import os
import shutil

import pytest

REQUIRED = os.environ.get("HARNESS_REQUIRE_TOOLS") == "1"  # set by .ci/run, which installs the tools


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {package})"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path
