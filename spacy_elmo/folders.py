"""Folders that a failed command made, removed again when they stayed empty: by the downloader and by
the hook on spaCy's commands. It imports nothing of spacy-elmo, so any module may import it."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Union


def missing_folders(path: Union[str, Path]) -> List[Path]:
    """`path` and those of its parents that do not exist yet, deepest first: what a failure may remove again."""
    missing, path = [], Path(path)
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def remove_empty(folders: Iterable[Path]) -> None:
    """Remove each of `folders` (deepest first) that exists and is empty; anything left in one keeps it."""
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
