"""The seed's "paint colours" example, for a char-RNN: every named colour that matplotlib ships
(the xkcd colour survey's 949 names and CSS's 148), one name a line, as a text file::

    python examples/colour_names.py data/colours/colours.txt
    neuralband encode --scheme text data/colours -o data/colours-dataset --piece-bytes 300

The names are sorted and shuffled with a fixed seed, so that each piece of the file (about 300
bytes of whole lines) holds names from across the alphabet, and the train, valid and test
pieces are alike.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def colour_names() -> list[str]:
    """matplotlib's named colours, lower case, without their "xkcd:" prefix, each once."""
    import matplotlib.colors as colors

    names = {n.removeprefix("xkcd:").lower() for n in (*colors.XKCD_COLORS, *colors.CSS4_COLORS)}
    return sorted(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the text file to write")
    parser.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
    args = parser.parse_args()
    names = colour_names()
    random.Random(args.seed).shuffle(names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(names) + "\n")
    print(f"wrote {args.out}: {len(names)} colour names, {args.out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
