"""Real training data nobody here wrote: the corpus that ships with music21 (on PyPI).

Exports the 371 Bach chorales (Riemenschneider's numbering) to MIDI files and copies five folk
tune collections in ABC notation, ready for ``neuralband encode``::

    pip install music21
    python examples/music21_corpus.py data/music21 --chorales all --folk
    neuralband encode data/music21 -o data/music21-dataset

Layout written under OUT_DIR::

    bach_chorales/bwv269.mid ...   one MIDI file per chorale (music21's own MIDI export)
    folk/<collection>/*.abc        the collection's ABC files, plus its license.txt if it has one

Riemenschneider's 371 numbers point at 350 distinct corpus files (some chorales appear twice in
the collection); each file is exported once, so ``--chorales all`` writes 350 MIDI files.
Files already exported are skipped, so a second run takes a second.

Licences: the music21 corpus is distributed with the encoders' permission; the Bach chorales are
public-domain compositions; essenFolksong is for non-commercial use only (see its license.txt).
Check each collection's licence before you use what you train on it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

FOLK_COLLECTIONS = ("oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "essenFolksong")
LICENCE_NOTE = (
    "licences: this is the music21 corpus (github.com/cuthbertLab/music21, corpus/license.txt);\n"
    "  the Bach chorales are public-domain compositions; essenFolksong is for non-commercial\n"
    "  use only (see its license.txt); check each collection's licence before you use a model\n"
    "  trained on it."
)


def import_music21() -> ModuleType:
    """music21, or exit with a one-line hint if it is not installed."""
    try:
        import music21
    except ImportError:
        sys.exit("music21 is not installed: pip install music21")
    return music21


def corpus_root() -> Path:
    """The folder of music21's bundled corpus (bach/, essenFolksong/, ...)."""
    music21 = import_music21()
    manual = music21.corpus.corpora.CoreCorpus().manualCoreCorpusPath
    return Path(manual) if manual else Path(music21.__file__).parent / "corpus"


def chorale_names(limit: int | None = None) -> list[str]:
    """Corpus names ('bach/bwv269') of the chorales in Riemenschneider order, each once."""
    music21 = import_music21()
    names = music21.corpus.chorales.Iterator(returnType="filename")
    distinct = list(dict.fromkeys(names))
    return distinct if limit is None else distinct[:limit]


@dataclass
class ChoraleExport:
    """What one chorale export did."""

    folder: Path
    written: int = 0
    existing: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def files(self) -> int:
        return self.written + self.existing


def export_chorales(out_dir: str | os.PathLike, limit: int | None = None,
                    progress: bool = True) -> ChoraleExport:
    """Write the Bach chorales as MIDI files into out_dir/bach_chorales (first ``limit`` only).

    A chorale that music21 cannot parse or export is skipped and listed in ``failed``.
    """
    from tqdm import tqdm

    music21 = import_music21()
    from music21.midi.translate import streamToMidiFile

    folder = Path(out_dir) / "bach_chorales"
    folder.mkdir(parents=True, exist_ok=True)
    result = ChoraleExport(folder)
    for name in tqdm(chorale_names(limit), unit="chorale", disable=not progress,
                     dynamic_ncols=True):
        target = folder / f"{name.split('/')[-1]}.mid"
        if target.exists():
            result.existing += 1
            continue
        try:
            score = music21.corpus.parse(name)
            midi = streamToMidiFile(score)
            # Write next to the target, then rename: an interrupted run leaves no half file.
            fd, tmp = tempfile.mkstemp(suffix=".mid.tmp", dir=folder)
            os.close(fd)
            try:
                midi.open(tmp, "wb")
                midi.write()
                midi.close()
                os.replace(tmp, target)
            finally:
                Path(tmp).unlink(missing_ok=True)
        except Exception as err:  # noqa: BLE001 - one bad score must not stop the export
            result.failed.append((name, f"{type(err).__name__}: {err}"))
            continue
        result.written += 1
    return result


def copy_folk(out_dir: str | os.PathLike) -> dict[str, int]:
    """Copy the ABC folk collections into out_dir/folk/<collection>/; ABC files per collection."""
    root = corpus_root()
    counts: dict[str, int] = {}
    for collection in FOLK_COLLECTIONS:
        source = root / collection
        if not source.is_dir():
            print(f"warning: {collection} is not in this music21 corpus ({source})",
                  file=sys.stderr)
            continue
        target = Path(out_dir) / "folk" / collection
        target.mkdir(parents=True, exist_ok=True)
        abc_files = sorted(source.glob("*.abc"))
        for path in [*abc_files, source / "license.txt"]:
            if path.is_file():
                shutil.copy2(path, target / path.name)
        counts[collection] = len(abc_files)
    return counts


def _chorale_count(text: str) -> int | None:
    if text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a number or 'all', got {text!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"want at least 1 chorale, got {count}")
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export music21's Bach chorales to MIDI and copy its ABC folk collections.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into (made if needed)")
    parser.add_argument("--chorales", metavar="N|all", type=_chorale_count, default=False,
                        help="export the first N Bach chorales, or all of them, as MIDI")
    parser.add_argument("--folk", action="store_true",
                        help=f"copy the ABC collections {', '.join(FOLK_COLLECTIONS)}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.chorales is False and not args.folk:
        parser.error("nothing to do: give --chorales N|all and/or --folk")

    import_music21()
    out = Path(args.out_dir)
    if args.chorales is not False:
        export = export_chorales(out, args.chorales, progress=not args.quiet)
        print(f"bach chorales: {export.files} MIDI files in {export.folder} "
              f"({export.written} written, {export.existing} already there, "
              f"{len(export.failed)} failed)")
        for name, reason in export.failed:
            print(f"  skipped {name}: {reason}")
    if args.folk:
        counts = copy_folk(out)
        print(f"folk: {sum(counts.values())} ABC files in {out / 'folk'}")
        for collection, n in counts.items():
            print(f"  {collection:<14} {n:4d} files")
    print(LICENCE_NOTE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
