"""Where the shared real-world corpus lives.

``BIOIMAGE_CORPUS_DIR`` when set; otherwise the first ``shared/corpus`` found beside the repository or
above it (a checkout next to the corpus, or a CI clone further down the same tree). Tests that need it
fail with this message rather than skip: the corpus is part of what they test against.
"""

import os
from pathlib import Path

_ENV = "BIOIMAGE_CORPUS_DIR"


def _find() -> Path:
    if os.environ.get(_ENV):
        return Path(os.environ[_ENV]).expanduser().resolve()
    repo = Path(__file__).resolve().parents[1]
    for parent in repo.parents:
        candidate = parent / "shared" / "corpus"
        if (candidate / "MANIFEST.md").is_file():
            return candidate
    raise RuntimeError(
        f"the test corpus was not found: set {_ENV} to the folder holding MANIFEST.md "
        "(expected at ../shared/corpus beside the repository)"
    )


CORPUS: Path = _find()
