"""The README's Python example, as written, run twice in one process (issue: the second call used to
find the submodule ``visiontrain.predict`` instead of the function)."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import visiontrain

REPO = Path(__file__).resolve().parents[1]


def test_no_submodule_shares_a_name_with_a_public_function() -> None:
    modules = {m.name for m in pkgutil.iter_modules(visiontrain.__path__)}
    assert not modules & set(visiontrain.__all__)


def _readme_example() -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(r"## From Python\s+```python\n(.*?)```", text, re.S)
    assert match, "README.md has no Python example under '## From Python'"
    return match.group(1)


@pytest.mark.slow
def test_the_readme_python_example_runs_twice(ants_bees_small: Path, tmp_path: Path) -> None:
    example = _readme_example()
    image = next((ants_bees_small / "val" / "bees").iterdir())
    # The README's placeholders point at real files; the code itself is run as written.
    code = (example.replace('"data/"', repr(str(ants_bees_small))).replace('"runs/first"', repr(str(tmp_path / "first")))
            .replace('"photo.jpg"', repr(str(image))).replace('"epochs": 10', '"epochs": 2, "image_size": 64, "fine_tune_epochs": 1'))
    assert code != example
    script = f"{code}\n{code}\nprint('RAN TWICE')\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**__import__("os").environ})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RAN TWICE" in result.stdout
    assert result.stdout.count("'label': 'bees'") + result.stdout.count("'label': 'ants'") >= 4  # top-3 of 2 classes, twice
