"""Check the corpora that project.yml declares in `assets:` and complete them from a local copy.

    python scripts/data_assets.py --local ../shared/data

Every asset with a checksum must be at its `dest` with that checksum (md5, as `spacy project assets`
checks). One that is missing is taken from --local, a folder laid out as assets/ is (this project's machines
have one at ../shared/data), when it is there with the right checksum; else it is built when it is derived
from other assets (EWT train from the treebank's sources, SST train from munikarmanish/RNTN's trees). What is
still missing or wrong ends the step with one line that says which files and how to get them; nothing is
left half-written.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path
from typing import Callable, Dict, Optional

ASSETS = Path("assets")
SST_TRAIN_TREES = 8544


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ewt_train(dest: Path) -> Optional[bytes]:
    """As the treebank's not-to-release/tools/build.py: its sources, concatenated in files.train's order."""
    sources = dest.parent / "not-to-release"
    if not (sources / "file-lists" / "files.train").is_file():
        return None
    names = (sources / "file-lists" / "files.train").read_text(encoding="utf8").split()
    return b"".join((sources / "sources" / name).read_bytes() for name in names)


def sst_train(dest: Path) -> Optional[bytes]:
    """The first 8,544 trees of RNTN's trees/train.txt: the standard SST train split."""
    source = dest.parent / "RNTN-train.txt"
    if not source.is_file():
        return None
    return b"".join(source.read_bytes().splitlines(keepends=True)[:SST_TRAIN_TREES])


DERIVED: Dict[str, Callable[[Path], Optional[bytes]]] = {
    "ud-english-ewt/en_ewt-ud-train.conllu": ewt_train,
    "sst/train.txt": sst_train,
}


def write_whole(dest: Path, fill: Callable[[Path], None]) -> None:
    partial = dest.with_name(dest.name + ".partial")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fill(partial)
    partial.replace(dest)


def complete(dest: Path, checksum: str, local: Optional[Path]) -> str:
    """'' when `dest` holds the asset afterwards, else why not."""
    if dest.is_file() and md5(dest) == checksum:
        return ""
    relative = dest.relative_to(ASSETS).as_posix()
    if local is not None and (local / relative).is_file() and md5(local / relative) == checksum:
        write_whole(dest, lambda partial: shutil.copyfile(local / relative, partial))
        return ""
    if relative in DERIVED:
        built = DERIVED[relative](dest)
        if built is not None and hashlib.md5(built).hexdigest() == checksum:
            write_whole(dest, lambda partial: partial.write_bytes(built))
            return ""
    return "wrong checksum" if dest.exists() else "missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=Path, default=Path("project.yml"))
    parser.add_argument("--local", type=Path, default=None,
                        help="a local copy of the corpora in the assets/ layout; used when it exists")
    args = parser.parse_args()
    import srsly

    local = args.local if args.local is not None and args.local.is_dir() else None
    assets = [a for a in srsly.read_yaml(args.project).get("assets", []) if a.get("checksum")]
    problems = {a["dest"]: complete(Path(a["dest"]), a["checksum"], local) for a in assets}
    bad = {dest: why for dest, why in problems.items() if why}
    source = f"the local copy {args.local}" if local else f"no local copy ({args.local} not found)"
    if bad:
        first = next(iter(bad))
        raise SystemExit(f"Error: {len(bad)} of {len(assets)} corpus files missing or wrong ({first}: {bad[first]}; "
                         f"{source}): run `python -m spacy project assets` (network), or point --vars.local_data "
                         "at a local copy, then this step again")
    print(f"{len(assets)} corpus files in {ASSETS}/, checksums match ({source})")


if __name__ == "__main__":
    main()
