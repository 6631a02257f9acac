"""An earlier revision of the repository to run side by side with the working tree (the "before" of a
before/after benchmark): a detached ``git worktree`` in the temporary directory, made once and reused.
Remove it after with ``git worktree remove PATH``."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worktree(revision: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"visiontrain-{revision}"
    if not (path / "src").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), revision], check=True,
                       capture_output=True)
    return path
