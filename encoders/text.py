"""Text as tokens, one byte each (char-RNN, Karpathy 2015): any UTF-8 or ASCII text, 256 classes.

A file is cut at line ends into pieces of about ``piece_bytes``, each hashed and split on its
own, so even one file of text gives a training, a validation and a test split. Bytes, not
characters: every file encodes, and a model's samples decode with ``errors="replace"``.
"""

from __future__ import annotations

import numpy as np

from neuralband.encoders.schemes import Limits, Piece, TokenScheme

TEXT_SUFFIXES = (".txt", ".text", ".md")


class TextScheme(TokenScheme):
    """Bytes of text: token = byte value."""

    name = "text"
    suffixes = TEXT_SUFFIXES
    unit = "bytes"
    source_unit = "bytes"
    opening = (10,)  # a model starts from a line's end: what a piece of text follows
    output_suffix = ".txt"

    def __init__(self, piece_bytes: int = 1024) -> None:
        if piece_bytes < 1:
            raise ValueError(f"piece_bytes must be >= 1, got {piece_bytes}")
        self.piece_bytes = piece_bytes

    @property
    def input_classes(self) -> int:
        return 256

    def pieces(self, path: str, data: bytes) -> list[Piece]:
        """Runs of whole lines, each ending at the first line end once it holds ``piece_bytes``
        (a long line ends its piece wherever it falls), named by their first line's number."""
        out, start, line = [], 0, 1
        while start < len(data):
            end = data.find(b"\n", start + self.piece_bytes - 1)
            end = len(data) if end < 0 else end + 1
            chunk = data[start:end]
            out.append(Piece(f"line {line}", chunk, chunk))
            line += chunk.count(b"\n")
            start = end
        if not out:
            raise ValueError("empty: no text")
        return out

    def encode(self, piece: Piece, name: str) -> np.ndarray:
        return np.frombuffer(bytes(piece.source), np.uint8).astype(np.int64)

    def read_primer(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode(), np.uint8).astype(np.int64)

    def decode(self, tokens: np.ndarray) -> str:
        """Tokens back to text (bytes that are not UTF-8 become U+FFFD)."""
        return bytes(np.asarray(tokens, np.uint8)).decode("utf-8", errors="replace")

    def summary(self, tokens: np.ndarray) -> dict[str, float]:
        return {"bytes": len(tokens), "lines": int((np.asarray(tokens) == 10).sum())}

    def refusal(self, tokens: np.ndarray, limits: Limits) -> str | None:
        if not np.any(np.asarray(tokens) > 32):
            return "empty: no text"
        return None

    def describe(self, token: int) -> str:
        return repr(chr(int(token))) if int(token) < 128 else f"byte 0x{int(token):02x}"

    def to_dict(self) -> dict:
        return {"name": self.name, "piece_bytes": self.piece_bytes}

    @classmethod
    def from_dict(cls, d: dict) -> TextScheme:
        return cls(int(d.get("piece_bytes", 1024)))

    @classmethod
    def from_options(cls, options: dict) -> TextScheme:
        super().from_options(options)  # no --voices, no --grid
        return cls(int(options.get("piece_bytes") or 1024))
