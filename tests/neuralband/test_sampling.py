"""The sampler's grammar and randomness, and offline generation with the bundled model."""

from __future__ import annotations

import subprocess
import sys

import mido
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.performance import (
    DEFAULT_SETTINGS,
    NOTE_OFF,
    TIME_SHIFT,
    VELOCITY,
    decode_notes,
)
from neuralband.encoders.schemes import VoicedScheme
from neuralband.encoders.voices import VoiceSettings
from neuralband.generate import generate
from neuralband.modelfile import bundled_model
from neuralband.sampling import NoteTracker, Rules, Sampler
from neuralband.voicing import Voicing

S = TIME_SHIFT - 1


def test_note_off_only_for_sounding_pitches_and_no_double_velocity():
    t = NoteTracker()
    a = t.allowed()
    assert not a[NOTE_OFF:TIME_SHIFT].any() and a[60] and a[VELOCITY]
    for tok in (VELOCITY + 10, 60, TIME_SHIFT):  # a note ends a step after it began at least
        t.update(tok)
    a = t.allowed()
    assert a[NOTE_OFF + 60] and a[NOTE_OFF:TIME_SHIFT].sum() == 1
    t.update(VELOCITY + 3)
    assert not t.allowed()[VELOCITY:].any()


def test_pitch_range_and_polyphony():
    t = NoteTracker(Rules(max_polyphony=2, pitch_low=48, pitch_high=72))
    a = t.allowed()
    assert a[48] and a[72] and not a[47] and not a[73]
    t.update(60)
    t.update(64)
    assert not t.allowed()[:128].any()
    t.update(NOTE_OFF + 60)
    assert t.allowed()[67]


def test_notes_are_forced_off_at_the_maximum_length():
    t = NoteTracker(Rules(max_note_s=1.5))
    t.update(60)
    t.update(S + 100)
    a = t.allowed()
    assert a[S + 50] and not a[S + 51]  # no shift may hold the note past 1.5 s
    t.update(S + 50)
    a = t.allowed()
    assert np.flatnonzero(a).tolist() == [NOTE_OFF + 60]
    assert t.closing_tokens() == [NOTE_OFF + 60]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 2.0), st.floats(0.05, 1.0))
def test_sampler_never_picks_a_masked_event(seed, temperature, top_p):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, 388)
    allowed = rng.random(388) < 0.3
    allowed[rng.integers(388)] = True
    sampler = Sampler(Rules(temperature=temperature, top_p=top_p), seed)
    for _ in range(20):
        assert allowed[sampler.sample(logits, allowed)]


def test_top_p_keeps_only_the_nucleus_and_seeds_reproduce():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05] + [1e-9] * 384))
    allowed = np.ones(388, bool)
    first = Sampler(Rules(top_p=0.7), 5).sample(logits, allowed)
    sampler = Sampler(Rules(top_p=0.7), 5)
    seen = {sampler.sample(logits, allowed) for _ in range(500)}
    assert seen == {0, 1}
    assert first == Sampler(Rules(top_p=0.7), 5).sample(logits, allowed)
    cold = Sampler(Rules(temperature=0.01), 0)
    assert {cold.sample(logits, allowed) for _ in range(50)} == {0}


WAITS = np.zeros(388, bool)
WAITS[TIME_SHIFT:VELOCITY] = True  # the 100 TIME_SHIFTs


def test_top_p_weighs_waiting_as_one_choice():
    """Two notes at 0.5 and 0.3, a wait of 0.2 spread over 100 lengths: top-p 0.9 cut token by
    token keeps only the shortest half of the waits; with the waits as one choice, waiting
    (0.2) is the second likeliest choice and every length of it stays. A wait of 0.04 beside a
    note of 0.96 is dropped whole."""
    p = np.zeros(388)
    p[[60, 61]] = 0.5, 0.3
    p[WAITS] = np.linspace(0.003, 0.001, 100) / np.linspace(0.003, 0.001, 100).sum() * 0.2
    plain, grouped = p.copy(), p.copy()
    Sampler(Rules(top_p=0.9), 0)._nucleus(plain)
    Sampler(Rules(top_p=0.9), 0, 388, WAITS)._nucleus(grouped)
    assert 0 < np.count_nonzero(plain[WAITS]) < 100
    assert np.count_nonzero(grouped[WAITS]) == 100 and grouped[60] and grouped[61]
    q = np.zeros(388)
    q[60] = 0.96
    q[WAITS] = 0.0004
    Sampler(Rules(top_p=0.95), 0, 388, WAITS)._nucleus(q)
    assert np.flatnonzero(q).tolist() == [60]
    with pytest.raises(ValueError, match="classes"):
        Sampler(Rules(), 0, 400, WAITS)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 0.99))
def test_the_nucleus_keeps_waits_together_and_the_likeliest_choices(seed, top_p):
    """Whatever the distribution: the waits are all kept or all dropped, what is kept holds at
    least top_p of the mass, and no dropped choice is likelier than a kept one."""
    rng = np.random.default_rng(seed)
    p = np.exp(rng.normal(0, 2, 388)) * (rng.random(388) < 0.5)
    p[rng.integers(388)] += 1.0
    kept = p.copy()
    Sampler(Rules(top_p=top_p), seed, 388, WAITS)._nucleus(kept)
    assert np.count_nonzero(kept[WAITS]) in (0, np.count_nonzero(p[WAITS]))
    assert kept.sum() >= top_p * p.sum() - 1e-9
    choices = np.append(p[~WAITS], p[WAITS].sum())
    is_kept = np.append(kept[~WAITS] > 0, kept[WAITS].sum() > 0)
    if (~is_kept & (choices > 0)).any():
        assert choices[is_kept].min() >= choices[~is_kept].max()


def check_piece(tokens: np.ndarray, rules: Rules) -> None:
    """Every event obeys the grammar, and every NOTE_ON has its NOTE_OFF."""
    tracker = NoteTracker(rules)
    for tok in tokens:
        assert tracker.allowed()[tok], int(tok)
        tracker.update(int(tok))
    assert tracker.sounding == 0
    ons, offs = (tokens < NOTE_OFF).sum(), ((tokens >= NOTE_OFF) & (tokens < TIME_SHIFT)).sum()
    assert ons == offs


def test_generate_variations_with_the_bundled_model():
    rules = Rules(max_note_s=2.0, max_polyphony=6)
    pieces = generate(bundled_model(), None, seconds=15, variations=3, rules=rules, seed=7)
    assert len(pieces) == 3
    assert len({p.tokens.tobytes() for p in pieces}) == 3  # three different variations
    for piece in pieces:
        generated = piece.tokens[piece.primer_length:]
        check_piece(generated, rules)
        notes = decode_notes(piece.tokens)
        end = max(e for _, e, _, _ in notes)
        assert 14.0 <= end / 100 <= 15.2
        assert max(e - s for s, e, _, _ in notes) <= 200
    again = generate(bundled_model(), None, seconds=15, variations=3, rules=rules, seed=7)
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(pieces, again, strict=True))


def test_generate_continues_a_primer():
    from neuralband.encoders import encode
    from tests.helpers.data import CHORALES

    primer = encode(CHORALES[0])
    piece = generate(bundled_model(), primer, seconds=5, seed=1)[0]
    assert np.array_equal(piece.tokens[: len(primer)], primer)
    assert piece.primer_length == len(primer)


def test_cli_generate_writes_midi_with_no_hanging_notes(tmp_path):
    out = subprocess.run([sys.executable, "-m", "neuralband", "generate", "--seconds", "8",
                          "-n", "2", "--seed", "3", "-o", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for i in (1, 2):
        messages = [m for m in mido.MidiFile(tmp_path / f"generated-{i}.mid") if not m.is_meta]
        held: dict[int, int] = {}
        for m in messages:
            if m.type == "note_on" and m.velocity > 0:
                held[m.note] = held.get(m.note, 0) + 1
            elif m.type in ("note_off", "note_on"):
                held[m.note] -= 1
        assert held and all(v == 0 for v in held.values())


def test_rules_are_checked():
    with pytest.raises(ValueError, match="temperature"):
        Rules(temperature=0)
    with pytest.raises(ValueError, match="top-p"):
        Rules(top_p=1.5)


def test_the_band_mask_expects_the_lead_and_skips_the_time_that_passed():
    """`Voicing.band_mask`: the lead's events join the band's where the band asks what comes
    next; after n steps of nothing only the TIME_SHIFTs longer than n remain."""
    voicing = Voicing(VoicedScheme(VoiceSettings(2)))
    tracker = voicing.tracker(Rules())
    out = np.empty(voicing.vocab_size, bool)
    band = voicing.band_mask(tracker.allowed(), out).copy()
    assert not band[voicing.is_lead].any() and band[voicing.voice_of == 1].any()
    expect = voicing.band_mask(tracker.allowed(), out, expect_lead=True).copy()
    assert np.array_equal(expect, band | voicing.is_lead)
    later = voicing.band_mask(tracker.allowed(), out, after=30)
    assert not later[~voicing.is_shift].any()
    assert sorted(voicing.shift_steps[later]) == list(range(31, 101))


def test_long_notes_are_nudged_towards_their_end_before_the_cap():
    """Past end_from of the longest note, the note's NOTE_OFF gains up to end_push nats; other
    events and short notes are left alone."""
    s = DEFAULT_SETTINGS
    rules = Rules(max_note_s=2.0, end_from=0.5, end_push=4.0)
    tracker = NoteTracker(rules, s)
    tracker.update(s.note_on + 60)
    tracker.update(s.time_shift + 49)  # 0.5 s
    tracker.update(s.note_on + 64)
    assert tracker.endings() is None
    tracker.update(s.time_shift + 99)  # 1.5 s: the first note is 3/4 of the way to the cap
    nudge = tracker.endings()
    assert nudge[s.note_off + 60] == pytest.approx(2.0)
    assert nudge[s.note_off + 64] == 0.0  # 1.0 s: not yet long
    assert np.count_nonzero(nudge) == 1
    logits = np.zeros(s.vocab_size)
    allowed = np.zeros(s.vocab_size, bool)
    allowed[[s.note_off + 60, s.note_off + 64]] = True
    draws = [Sampler(rules, k, s.vocab_size).sample(logits, allowed, nudge) for k in range(400)]
    assert 0.8 < np.mean(np.array(draws) == s.note_off + 60) < 0.95  # e^2 / (e^2 + 1) = 0.88


def test_a_note_lasts_at_least_one_step():
    """No NOTE_OFF in the step its note began (the data has no zero-length notes; live they
    went out as bursts of clicks): not for a plain stream, nor in any voice of a duet model's
    generated music."""
    s = DEFAULT_SETTINGS
    tracker = NoteTracker(Rules(), s)
    tracker.update(s.note_on + 60)
    tracker.update(s.note_on + 64)
    assert not tracker.allowed()[s.note_off + 60]
    tracker.update(s.time_shift)  # one step
    tracker.update(s.note_on + 60)  # struck again while the first is open: the first may end
    allowed = tracker.allowed()
    assert allowed[s.note_off + 60] and allowed[s.note_off + 64]

    from neuralband.modelfile import read_info
    from neuralband.voicing import from_info

    info = read_info("duet")
    voicing = from_info(info)
    for piece in generate("duet", None, seconds=15, variations=2, seed=3):
        tokens = piece.tokens[piece.primer_length:].tolist()
        end = sum(int(voicing.shift_steps[t]) for t in tokens)  # where the closing NOTE_OFFs go
        step, began = 0, {}
        for tok in tokens:
            if step == end:
                break
            voice, base = voicing.voice_list[tok], voicing.base_list[tok]
            if voice < 0:
                step += int(voicing.shift_steps[tok])
            elif base < s.note_off:
                began.setdefault((voice, base), []).append(step)
            elif base < s.time_shift and began.get((voice, base - s.note_off)):
                assert began[(voice, base - s.note_off)].pop(0) < step


# --- the pull onto the beat's lines (Rules.tight) -----------------------------------------------


def _pull(tight: float = 2.0):
    return Voicing(VoicedScheme(VoiceSettings(2))).grid_pull(Rules(tight=tight))


def test_no_pull_at_tight_zero_and_tight_is_checked():
    assert _pull(0.0) is None
    with pytest.raises(ValueError, match="tight"):
        Rules(tight=-1)


def _softmax(x: np.ndarray) -> np.ndarray:
    p = np.exp(x - x.max())
    return p / p.sum()


@settings(max_examples=60, deadline=None)
@given(beat_pos=st.floats(0, 4, allow_nan=False), bpm=st.floats(50, 180),
       seed=st.integers(0, 2**16))
def test_the_pull_draws_waits_near_a_line_onto_it_and_moves_nothing_else(beat_pos, bpm, seed):
    """A quantiser in probability: each wait that ends near an eighth line ahead (within
    GRID_WINDOW_BEFORE of an eighth before it or GRID_WINDOW_AFTER after it) shares its chance with
    that line's other near waits, the ones within GRID_NEAR_S of the line gaining; the near waits of
    a line keep their mass together, and every other event (playing now, a wait back to the line the
    band stands at, a wait that ends away from the lines) keeps its own chance exactly."""
    from neuralband.sampling import GRID_AT, GRID_NEAR_S, GRID_WINDOW_AFTER, GRID_WINDOW_BEFORE

    pull = _pull()
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, len(pull.waits))
    allowed = rng.random(len(pull.waits)) < 0.9
    allowed[pull.waits] = True
    mask = np.where(allowed, 0.0, -np.inf)
    period = 60.0 / bpm
    eighth = period / 2
    nudge = pull.nudge(logits, allowed, beat_pos, period).copy()
    before, after = _softmax(logits + mask), _softmax(logits + nudge + mask)
    ends = ((beat_pos % 1.0) * period + pull.shift_s) / eighth
    line = np.rint(ends)
    gap = np.abs(ends - line) * eighth
    near = pull.waits & (gap <= GRID_NEAR_S + 1e-9)
    late = (ends - line) * eighth  # after the line (< 0: before)
    window = pull.waits & ((gap <= GRID_NEAR_S + 1e-9)
                           | ((late >= -GRID_WINDOW_BEFORE * eighth - 1e-9)
                              & (late <= GRID_WINDOW_AFTER * eighth + 1e-9)))
    here = np.rint((beat_pos % 1.0) * period / eighth)  # the line the band stands at, if near
    off = abs((beat_pos % 1.0) * period / eighth - here)
    if off > GRID_AT and off * eighth > GRID_NEAR_S:
        here = np.nan
    # the windows of the lines ahead that some wait ends on
    drawn = window & np.isin(line, line[near]) & (line != here)
    assert np.allclose(after[~drawn], before[~drawn], rtol=1e-9, atol=1e-15)
    for at in np.unique(line[drawn & near]):
        group = drawn & (line == at)
        assert after[group].sum() == pytest.approx(before[group].sum(), rel=1e-9)
        on = group & near
        assert after[on].sum() >= before[on].sum() * (1 - 1e-9)
    assert near[pull.waits][:int(eighth / 0.01) + 1].any()  # a near wait in any eighth's worth


def test_the_pull_adds_the_endings_and_reuses_its_buffer():
    pull = _pull(1.5)
    logits = np.zeros(len(pull.waits))
    allowed = np.ones(len(pull.waits), bool)
    first = pull.nudge(logits, allowed, 0.0, 0.5)
    endings = np.full(len(pull.waits), 0.25)
    second = pull.nudge(logits, allowed, 0.0, 0.5, endings)
    assert second is first  # one buffer, every draw
    assert second[~pull.waits] == pytest.approx(0.25)


def test_a_tight_band_plays_more_on_the_bpm_grid_and_about_as_busily():
    """The bundled pop model from silence at 100 BPM: with the default pull more of its onsets
    fall on the eighth lines than with none, at about the notes a second (a rolled chord's
    notes still come a step or two apart)."""
    from neuralband.encoders.beats import on_grid, steady_beats
    from neuralband.sampling import TIGHT, model_rules

    model = bundled_model("pop")
    from neuralband.modelfile import read_info

    info = read_info(model)
    grid = steady_beats(100, 0.1, 25.0)
    counts, shares = {}, {}
    for tight in (0.0, TIGHT):
        rules = model_rules(info, None, top_p=0.95, tight=tight)
        onsets, notes = [], 0
        for piece in generate(model, None, 12.0, 2, rules, seed=3, beats=grid):
            starts = np.array([n[0] for n in decode_notes(piece.tokens)]) / 100.0
            onsets.append(starts)
            notes += len(starts)
        shares[tight] = on_grid(np.concatenate(onsets), grid)
        counts[tight] = notes
    assert model_rules(info).tight == TIGHT  # the default for a model that reads the beat
    assert shares[TIGHT] > shares[0.0] + 0.05
    assert counts[TIGHT] == pytest.approx(counts[0.0], rel=0.3)


def test_the_pull_allocates_no_array_per_draw():
    """On the live path: no temporary the size of the vocabulary (tracemalloc's peak over many
    draws stays under one such array; numpy's own reductions hold a kilobyte or two, and
    gathering the lines with np.unique and masks peaked at 12 kB)."""
    import tracemalloc

    pull = _pull(4.0)
    n = len(pull.waits)
    logits = np.random.default_rng(0).normal(size=n)
    allowed, endings = np.ones(n, bool), np.zeros(n)
    pull.nudge(logits, allowed, 0.3, 0.6, endings)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for k in range(300):
            pull.nudge(logits, allowed, k * 0.013, 0.6, endings)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < pull._nudge.nbytes
