"""Where the shared real-world corpus lives: ``<workspace>/shared/corpus`` beside this repository."""

from pathlib import Path

CORPUS: Path = Path(__file__).resolve().parents[2] / "shared" / "corpus"
