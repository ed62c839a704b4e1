"""FolkRNN's tokens (`encoders.folk`): ABC tunes cut into folk-rnn's symbols, transposed to C
and spelled again, checked against what symusic's abc2midi plays; tunes the symbols cannot hold
refused with the reason; the scheme from `encode --scheme folk` to `generate`'s ABC and MIDI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import symusic

from neuralband.cli import main
from neuralband.encoders.abc import Tune, split_tunes, tune_to_midi
from neuralband.encoders.errors import MidiError
from neuralband.encoders.folk import (
    INDEX,
    MODES,
    VOCAB,
    FolkScheme,
    key_signature,
    parse_key,
    tune_checks,
    tune_tokens,
)
from neuralband.encoders.schemes import Piece
from tests.helpers.data import DATA

TUNES = DATA / "abc" / "tunes.abc"


def pitches(abc: str) -> list[int]:
    """The pitches abc2midi plays for a tune, in order."""
    score = symusic.Score.from_midi(tune_to_midi(Tune("X:1", "", abc), "tune"))
    notes = sorted((n.time, n.pitch) for t in score.tracks for n in t.notes)
    return [p for _, p in notes]


def test_the_test_tunes_become_folk_rnn_tokens_in_c():
    jig, reel, _, air = split_tunes(TUNES.read_text())
    assert " ".join(tune_tokens(jig.text)) == (
        "<s> M:6/8 K:Cmaj |: C E G c G E | F A c f c A | G E C D E F | G E C C 3 :| </s>")
    assert tune_tokens(reel.text)[:6] == ["<s>", "M:4/4", "K:Cmaj", "c", "d", "e"]  # G up to c
    assert tune_tokens(air.text)[:5] == ["<s>", "M:3/4", "K:Cmin", "c", "2"]  # Am to Cm


def test_key_signatures():
    assert key_signature(2, 1, "maj") == (1, 0, 0, 1, 0, 0, 0)  # D major: F# and C#
    assert key_signature(2, 1, "dor") == (0, 0, 0, 0, 0, 0, 0)  # D Dorian: none
    assert key_signature(9, 5, "dor") == (0, 0, 0, 1, 0, 0, 0)  # A Dorian: F#
    assert key_signature(0, 0, "min") == (0, 0, -1, 0, 0, -1, -1)  # C minor: Bb Eb Ab
    assert key_signature(6, 3, "mix") == (1, 1, 0, 1, 1, 1, 0)  # F# Mixolydian: B major's


MELODY = "|: D2 F A ^G A | =c B A G =F E | D2 ^c d3 :| d'2 A, B,/C/ D2 |]"


# Every tonic in every mode, but the theoretical keys (Db minor: Fb major's eight flats), which
# need double accidentals in their signature: abc2midi does not read them, and no tune is in one.
KEYS = [(tonic, mode) for mode in MODES for tonic in
        ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")
        if max(map(abs, key_signature(*parse_key(tonic + mode)))) <= 1]


@pytest.mark.parametrize(("tonic", "mode"), KEYS, ids=[t + m for t, m in KEYS])
def test_a_transposed_tune_plays_the_same_intervals(tonic, mode):
    """Accidentals in the tune, ones that hold to the bar's end and ones the key gives: what
    abc2midi plays of the tokens in C is what it plays of the tune, moved by one interval."""
    source = f"X:1\nM:6/8\nL:1/8\nK:{tonic}{mode}\n{MELODY}\n"
    tokens = tune_tokens(source)
    assert tokens[2] == f"K:C{mode}" and all(t in INDEX for t in tokens)
    scheme = FolkScheme()
    text = scheme.decode(np.array([INDEX[t] for t in tokens]))
    before, after = np.array(pitches(source)), np.array(pitches(text))
    assert len(before) == len(after) > 20  # the repeat is played twice by both
    assert len(set(after - before)) == 1 and abs(int(after[0] - before[0])) <= 6


def test_decoding_then_encoding_gives_the_same_tokens():
    for tune in split_tunes(TUNES.read_text()):
        try:
            tokens = tune_tokens(tune.text)
        except ValueError:
            continue  # the tune without a K: line
        again = tune_tokens(FolkScheme().decode(np.array([INDEX[t] for t in tokens])))
        assert again == tokens


@pytest.mark.parametrize(("body", "reason"), [
    ("[CEG]2 c2 |", "chords"),
    ("C D E F | [K:G] G A B c |", "changes its K"),
    ("C D E F |\nK:G\nG A B c |", "changes its K"),
    ("C D (5CDEFG |", r"'\(5' is not in folk-rnn's vocabulary"),
])
def test_what_the_symbols_cannot_hold_is_refused_with_the_reason(body, reason):
    scheme = FolkScheme()
    piece = Piece("X:1", b"", Tune("X:1", "", f"X:1\nM:4/4\nL:1/8\nK:D\n{body}\n"))
    with pytest.raises(MidiError, match=reason):
        scheme.encode(piece, "tune.abc#X:1")
    with pytest.raises(ValueError, match="mode 'phr'"):
        tune_tokens("X:1\nK:Ephr\nEFGA|\n")


def test_old_line_breaks_and_double_repeat_bars():
    """An old '!' line break is not a decoration that swallows the bars between two of them;
    ':||' and '||:' are one bar line each; a malformed note length is a refusal in words."""
    tokens = tune_tokens("X:1\nM:2/4\nL:1/8\nK:C\nCD EF|!GA Bc|!de fg:||: ab c'2 |]\n")
    assert tokens[3:-1] == ["C", "D", "E", "F", "|", "G", "A", "B", "c", "|", "d", "e", "f",
                            "g", "::", "a", "b", "c'", "2", "|]"]
    assert tune_tokens("X:1\nK:C\nCDEF:||\n")[-2] == ":|"
    assert tune_checks(np.array([INDEX[t] for t in tokens]))["bars_add_up"]
    with pytest.raises(ValueError, match="'1/0' is not a note length"):
        tune_tokens("X:1\nL:1/0\nK:C\nCDEF|\n")


def test_unit_lengths_become_eighths():
    sixteenths = tune_tokens("X:1\nM:2/4\nL:1/16\nK:C\nC2 D E F4 G8 |\n")
    assert sixteenths[3:] == ["C", "D", "/2", "E", "/2", "F", "2", "G", "4", "|", "</s>"]


def test_the_checks_on_tunes():
    def check(body: str, meter: str = "6/8") -> dict[str, bool]:
        return tune_checks(np.array([INDEX[t] for t in
                                     tune_tokens(f"X:1\nM:{meter}\nL:1/8\nK:C\n{body}\n")]))

    assert check("G | c2 e g2 e | (3fga g f2 e | d3 c2 :|") == {
        "meter_and_key": True, "bars_add_up": True, "ends_on_tonic": True}
    assert not check("G | c2 e g2 e | f2 g | d3 c2 :|")["bars_add_up"]  # a short inner bar
    assert not check("c2 e g2 e | c2 e g2 e | d3 e3 |]")["ends_on_tonic"]
    assert check("A>B c2 | d>e c2 | B2 c2 |]", "2/4")["bars_add_up"]  # broken rhythm


def test_folk_from_encode_to_train_to_generate(tmp_path, capsys):
    abc = tmp_path / "tunes.abc"
    keys = ["D", "G", "Ador", "Em", "Bmin", "F", "Amix", "Edor"]
    abc.write_text("".join(f"X:{k}\nT:t{k}\nM:6/8\nL:1/8\nK:{key}\n|: {MELODY[3:]}\n\n"
                           for k, key in enumerate(keys * 4)) + "X:99\nK:Cphr\nCDE|\n")
    ds, run, out = tmp_path / "ds", tmp_path / "run", tmp_path / "out"
    assert main(["encode", "--scheme", "folk", str(abc), "-o", str(ds), "--split", "70/30/0",
                 "-q"]) == 0
    errors = [json.loads(line) for line in (ds / "errors.jsonl").read_text().splitlines()]
    assert [e["tune"] for e in errors] == ["X:99"] and "mode 'phr'" in errors[0]["reason"]
    assert main(["train", str(ds), "-o", str(run), "--preset", "tiny", "--window", "24",
                 "--batch", "8", "--steps", "30", "--eval-every", "15", "--threads", "1",
                 "-q"]) == 0
    capsys.readouterr()
    assert main(["generate", "--model", str(run / "model"), "-n", "3", "--length", "80",
                 "--primer", "M:6/8 K:Cmaj |: C", "-o", str(out), "--seed", "0", "-q"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for k in (1, 2, 3):
        text = (out / f"generated-{k}.abc").read_text()
        assert text.startswith("X:1\nM:6/8\nL:1/8\nK:Cmaj\n|: C")
    assert all("generated-" in line for line in lines)
    assert main(["generate", "--model", str(run / "model"), "--primer", "M:6/8 K:Cmaj Q",
                 "-o", str(out)]) == 2
    assert "'Q' is not a folk-rnn token" in capsys.readouterr().err


def test_windows_run_on_into_the_next_tune_so_its_end_is_learnt(tmp_path):
    """Tunes end in </s>: a window may run past it into the next tune of the split, so every
    position starts as many windows, a tune shorter than a window is used too, and no window
    holds one tune twice (a model could copy the second from the first)."""
    from neuralband.training.dataset import build_dataset
    from neuralband.training.windows import TokenWindows, split_pieces

    abc = tmp_path / "tunes.abc"
    abc.write_text("".join(f"X:{k}\nM:6/8\nL:1/8\nK:{key}\n{MELODY}\n\n"
                           for k, key in enumerate(["D", "Am", "Edor", "Gmix"])))
    build_dataset([abc], tmp_path / "ds", FolkScheme(), workers=1, fractions=(1.0, 0.0, 0.0))
    windows = TokenWindows(tmp_path / "ds", "train", window=64, batch_size=256)
    assert windows.n_pieces == 4 and windows.skipped == 0  # each tune is 40-odd tokens
    batch = windows.batch(0)
    ends = batch == INDEX["</s>"]
    assert ends[:, :-1].any(axis=1).mean() > 0.9  # about every window holds a tune's end
    after = batch[:, 1:][ends[:, :-1]]
    assert set(after.tolist()) == {INDEX["<s>"]}  # and a tune starts after it
    tunes = [tuple(t) for t in split_pieces(tmp_path / "ds", "train")]
    for row in batch:
        starts = np.flatnonzero(row == INDEX["<s>"])
        whole = [tuple(row[a:b]) for a, b in zip(starts, starts[1:], strict=False)]
        assert len(set(whole)) == len(whole)  # four different tunes in a row, none twice
        assert all(w in tunes for w in whole)


def test_the_vocabulary_is_folk_rnn_sized():
    assert 250 <= len(VOCAB) <= 320 and len(set(VOCAB)) == len(VOCAB)


def test_generate_names_its_files_by_one_rule_for_every_scheme(tmp_path, capsys):
    """-o NAME.EXT is the file (numbered with -n), written in the scheme's format (a tune's
    MIDI beside its ABC); any other name is a folder: never a folder called folk.mid."""
    from neuralband.cli import main

    assert main(["generate", "--model", "folk", "-o", str(tmp_path / "folk.mid"), "-q",
                 "--seed", "1"]) == 0
    assert (tmp_path / "folk.abc").is_file() and (tmp_path / "folk.mid").is_file()
    assert main(["generate", "--model", "folk", "-n", "2", "-o", str(tmp_path / "t.abc"), "-q",
                 "--seed", "1"]) == 0
    assert {p.name for p in tmp_path.glob("t-*")} == {"t-1.abc", "t-1.mid", "t-2.abc",
                                                      "t-2.mid"}
    assert main(["generate", "--model", "colours", "-o", str(tmp_path / "c.txt"), "-q",
                 "--length", "20"]) == 0
    assert (tmp_path / "c.txt").is_file()
    assert main(["generate", "--model", "folk", "-o", str(tmp_path / "tunes"), "-q"]) == 0
    assert (tmp_path / "tunes" / "generated-1.abc").is_file()
    assert main(["generate", "--model", "chorale-folk", "-n", "2", "--seconds", "2",
                 "-o", str(tmp_path / "p.mid"), "-q"]) == 0
    assert (tmp_path / "p-1.mid").is_file() and (tmp_path / "p-2.mid").is_file()
