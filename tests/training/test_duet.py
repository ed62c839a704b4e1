"""Duet models: a voice-packed model trained on real chorales accompanies a melody, offline and
live, and never plays the lead's part."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.encoders.keys import CONSONANT_INTERVALS
from neuralband.encoders.midi_io import table_from_pretty_midi
from neuralband.encoders.performance import DEFAULT_SETTINGS, decode_notes, encode
from neuralband.encoders.schemes import VoicedScheme
from neuralband.encoders.voices import VoiceSettings, decode_voices, split
from neuralband.evaluate import melody_at
from neuralband.generate import accompany, generate
from neuralband.modelfile import bundled_model, read_info
from neuralband.runtime import Stepper
from neuralband.sampling import DUET_CLASH, DUET_UNDER_MELODY, Rules, Sampler, model_rules
from neuralband.training.config import TrainConfig
from neuralband.training.dataset import build_dataset
from neuralband.training.train import train
from neuralband.training.windows import LEAD_DENSITY_EDGES, TokenWindows
from neuralband.voicing import MelodyNote, Voicing
from tests.helpers import every_nth_valid
from tests.helpers.data import CHORALES, TRAIN_CHORALES
from tests.helpers.live import balanced, melody, session

SATB = VoiceSettings(4, lead="track:Soprano")


@pytest.fixture(scope="module")
def duet_dataset(tmp_path_factory) -> Path:
    """The 36 training chorales as SATB voice-packed tokens, every 6th piece valid."""
    out = tmp_path_factory.mktemp("duet") / "ds"
    build_dataset(TRAIN_CHORALES, out, workers=1, fractions=(1.0, 0.0, 0.0),
                  scheme=VoicedScheme(SATB))
    return every_nth_valid(out)


@pytest.fixture(scope="module")
def duet_model(duet_dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("duet-run")
    train(TrainConfig(str(duet_dataset), str(run), preset="tiny", steps=60, batch=8, window=64,
                      lr=1e-2, warmup=5, eval_every=30, eval_windows=16, threads=1,
                      transpose=3, progress=False))
    return run / "model"


def soprano(path: Path) -> np.ndarray:
    """A chorale's soprano line as Performance tokens: the melody to accompany."""
    pm = pretty_midi.PrettyMIDI(str(path))
    one = pretty_midi.PrettyMIDI()
    one.instruments.append(next(i for i in pm.instruments if i.name == "Soprano"))
    return encode(one)


def test_the_dataset_and_model_carry_the_voice_scheme(duet_dataset, duet_model):
    info = json.loads((duet_dataset / "settings.json").read_text())
    assert info["scheme"]["voices"] == {"voices": 4, "lead": "track:Soprano"}
    model = read_info(duet_model)
    assert model.scheme.voice_settings == SATB and model.config.vocab_size == 1252
    # Most chorales' voices hold one note at a time; the band's grammar will keep to that.
    assert model.summary["voice_polyphony"][:3] == [1, 1, 1]
    assert Stepper.load(duet_model).table.shape[0] == 1252


def test_transposed_windows_keep_every_event_in_its_voice(duet_dataset):
    plain = TokenWindows(duet_dataset, window=64, batch_size=4, seed=5)
    moved = TokenWindows(duet_dataset, window=64, batch_size=4, seed=5, transpose=6)
    a, b = plain.batch(0), moved.batch(0)
    va, ba = SATB.unpack(a)
    vb, bb = SATB.unpack(b)
    assert np.array_equal(va, vb)  # same voices, same TIME_SHIFTs
    notes = ba < DEFAULT_SETTINGS.time_shift
    shift = (bb - ba)[notes].reshape(-1) if notes.any() else np.zeros(0)
    assert np.array_equal(bb[~notes], ba[~notes]) and np.all(np.abs(shift) <= 6)


def test_accompaniment_keeps_the_melody_and_never_plays_the_lead(duet_model):
    melody_tokens = soprano(CHORALES[0])
    pieces = accompany(duet_model, melody_tokens, variations=2, seed=1)
    want = [(s + 10, e + 10, p, v) for s, e, p, v in decode_notes(melody_tokens)]
    for piece in pieces:
        streams = split(piece.tokens, SATB)
        assert decode_notes(streams[0]) == want  # the melody, at its own times, untouched
        band = [decode_notes(s) for s in streams[1:]]
        assert sum(len(b) for b in band) > 0
        voices, base = SATB.unpack(piece.tokens)
        for v in (1, 2, 3):  # every band note is closed: each voice's ONs and OFFs pair up
            mine = base[voices == v]
            for pitch in range(128):
                assert (mine == pitch).sum() == (mine == 128 + pitch).sum()
        for stream in streams[1:3]:  # monophonic voices in the data stay monophonic
            notes = decode_notes(stream)
            assert all(a[1] <= b[0] for a, b in zip(notes, notes[1:], strict=False))
        pm = decode_voices(piece.tokens, SATB)
        assert [i.name for i in pm.instruments] == ["lead", "band 1", "band 2", "band 3"]
        assert pm.get_end_time() <= (want[-1][1] / 100) + 1.0 + 0.01
    assert not np.array_equal(pieces[0].tokens, pieces[1].tokens)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 287), min_size=50, max_size=200))
def test_the_band_mask_never_allows_a_lead_event(seed, lead_events):
    """Random logits, the lead's events fed in between: what the band draws is never the lead's
    and always playable (a NOTE_OFF only for a note that voice holds)."""
    voicing = Voicing(VoicedScheme(SATB))
    tracker = voicing.tracker(Rules())
    sampler = Sampler(Rules(), seed, voicing.vocab_size)
    rng = np.random.default_rng(seed)
    held = np.zeros((4, 128), int)
    for e in lead_events:
        if e < 128 or (e < 256 and held[0, e - 128]) or e >= 256:
            tok = int(SATB.pack(0, e if e < 256 else e + 100))
            tracker.update(tok)
            held[0, e % 128] += 1 if e < 128 else -1 if e < 256 else 0
        tok = sampler.sample(rng.normal(size=voicing.vocab_size) * 3, tracker.allowed())
        voice, base = voicing.voice_of[tok], voicing.base_of[tok]
        assert voice != 0
        if voice > 0 and 128 <= base < 256:
            assert held[voice, base - 128] > 0
            held[voice, base - 128] -= 1
        elif voice > 0 and base < 128:
            held[voice, base] += 1
        tracker.update(tok)


def test_generate_with_a_voiced_model_plays_every_voice(duet_model):
    piece = generate(duet_model, None, seconds=8, seed=2)[0]
    voices, _ = SATB.unpack(piece.tokens)
    assert set(voices.tolist()) - {-1}  # something is played
    assert max(len(decode_notes(s)) for s in split(piece.tokens, SATB)) > 0


def test_live_duet_with_a_voiced_model(duet_model):
    """The engine feeds the player's notes as the lead and the band answers on channels 1-3."""
    engine, out = session("duet", melody(3.0), seconds=4.5, wait_s=0.5, model=duet_model)
    band = [d for _, d in out.sent]
    assert band and balanced(out.sent)
    assert {d[0] & 0x0F for d in band} <= {0, 1, 2}
    voices, base = SATB.unpack(np.array(engine.tokens))
    player = [b for v, b in zip(voices, base, strict=True) if v == 0 and b < 256]
    assert len(player) == engine.stats.absorbed  # every note message became a lead event
    assert engine.stats.band_events > 0


def test_live_band_waits_for_the_player_it_expects(duet_model):
    """Where a wait ends at a moment the model gave to the player, and the player does not
    come, the band draws a later moment instead of playing there: the wait is taken back
    (the stream holds no TIME_SHIFT the band did not live through) and nothing sticks."""
    engine, out = session("duet", melody(3.0), seconds=5.0, wait_s=0.5, model=duet_model)
    assert engine.stats.expected > 0
    assert balanced(out.sent)
    fresh = Stepper.load(duet_model)  # the committed stream replays into the same state
    for tok in engine.tokens:
        fresh.feed(tok)
    np.testing.assert_allclose(fresh.h, engine.stepper.h, atol=1e-5)


def test_accompany_refuses_a_plain_model():
    with pytest.raises(ValueError, match="voice-packed model"):
        accompany(bundled_model(), soprano(CHORALES[0]))


def test_generate_lead_on_the_command_line(duet_model, tmp_path, capsys):
    from neuralband.cli import main

    out = tmp_path / "accompanied.mid"
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]), "-o",
                 str(out), "--seed", "4", "-q"]) == 0
    pm = pretty_midi.PrettyMIDI(str(out))
    assert [i.name for i in pm.instruments] == ["lead", "band 1", "band 2", "band 3"]
    # From a four-track chorale the model's lead rule (track:Soprano) picks the melody.
    soprano_notes = pretty_midi.PrettyMIDI(str(CHORALES[0])).instruments[0].notes
    want = [(round(n.start * 100), round(n.end * 100), n.pitch) for n in soprano_notes]
    got = [(round(n.start * 100) - 10, round(n.end * 100) - 10, n.pitch)
           for n in pm.instruments[0].notes]
    assert got == want
    assert "band 1" in capsys.readouterr().out
    assert main(["generate", "--lead", str(CHORALES[0]), "-o", str(tmp_path / "x.mid")]) == 2
    assert "not a voice-packed model" in capsys.readouterr().err
    # --seconds N: the melody's first N seconds, accompanied
    short = tmp_path / "y.mid"
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]),
                 "--seconds", "5", "-o", str(short), "--seed", "4", "-q"]) == 0
    lead = pretty_midi.PrettyMIDI(str(short)).instruments[0].notes
    assert lead and max(n.end for n in lead) <= 5.0 + 0.1 + 1e-6  # after 10 steps of silence
    assert [n.pitch for n in lead] == [p for start, _, p in want if start < 500]
    capsys.readouterr()
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]),
                 "--primer", str(CHORALES[0]), "-o", str(tmp_path / "w.mid")]) == 2
    assert "leave out --primer" in capsys.readouterr().err
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]),
                 "--under-melody", "-1", "-o", str(tmp_path / "z.mid")]) == 2
    assert "nats >= 0" in capsys.readouterr().err
    assert not (tmp_path / "z.mid").exists()


def test_accompanying_counts_its_progress_in_the_melody_s_whole_seconds(duet_model, tmp_path,
                                                                       capsys):
    """The progress bar hears whole seconds of each variation in turn (no fraction lost), and
    the command's bar counts to the melody's length times the variations."""
    from neuralband.cli import main
    from neuralband.encoders.schemes import duration_s

    class Bar:
        told: list[int] = []

        def update(self, n: int) -> None:
            self.told.append(n)

    bar = Bar()
    lead = soprano(CHORALES[0])
    accompany(duet_model, lead, variations=2, seed=1, tail_s=1.0, progress=bar)
    assert all(n >= 1 for n in bar.told)
    assert sum(bar.told) == 2 * int(duration_s(lead) + 1.0)
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]), "-n", "2",
                 "-o", str(tmp_path / "x.mid"), "--seed", "4"]) == 0
    total = 2 * int(duration_s(lead) + 1.0)
    assert total >= 40 and f"{total}/{total} " in capsys.readouterr().err


def test_a_duet_model_with_controls_follows_the_melody_s_key(duet_dataset, tmp_path,
                                                              monkeypatch):
    """--controls on a voice-packed dataset: the key and density of the whole arrangement.
    Accompanying, the band is told the key of the melody heard so far and the density of the
    data's arrangements under a melody as busy (the lead's notes alone do not say the
    arrangement's); a model that does not know it leaves density free; --key fixes the key."""
    from neuralband.encoders.controls import token_controls
    from neuralband.steering import ControlChoice, steer

    run = tmp_path / "run"
    train(TrainConfig(str(duet_dataset), str(run), preset="tiny", steps=20, batch=8, window=64,
                      lr=1e-2, warmup=5, eval_every=10, eval_windows=16, threads=1,
                      progress=False, controls=True))
    model = run / "model"
    info = read_info(model)
    assert info.controls is not None and info.scheme.voice_settings == SATB
    assert set(info.controls.key_profiles) <= {"major", "minor"} and info.controls.key_profiles

    piece = next(iter(TokenWindows(duet_dataset, window=64, batch_size=1).batch(0)))
    _, base = SATB.unpack(piece)
    np.testing.assert_array_equal(token_controls(piece, info.controls, voices=SATB),
                                  token_controls(base, info.controls))

    arranged = info.summary["arrangement_density"]  # kept from the data at training
    assert arranged["lead_edges"] == list(LEAD_DENSITY_EDGES)
    assert len(arranged["density"]) == len(LEAD_DENSITY_EDGES) + 1
    assert all(0 < d < 30 for d in arranged["density"])
    steering = steer(Stepper.load(model), None)
    assert steering.choice == ControlChoice("follow", "follow")
    unknowing = tmp_path / "unknowing"  # the same model, its file without the table
    meta = json.loads(model.with_suffix(".json").read_text())
    del meta["summary"]["arrangement_density"]
    unknowing.with_suffix(".json").write_text(json.dumps(meta))
    unknowing.with_suffix(".safetensors").write_bytes(
        model.with_suffix(".safetensors").read_bytes())
    assert steer(Stepper.load(unknowing), None).choice == ControlChoice("follow", "free")
    melody_tokens = soprano(CHORALES[0])
    told = []  # every control vector the band is given, through the real method
    real = Stepper.set_controls
    monkeypatch.setattr(Stepper, "set_controls",
                        lambda self, v: (told.append(np.array(v)), real(self, v))[1])
    accompany(model, melody_tokens, seed=5)
    melody_pitches = [p for _, _, p, _ in decode_notes(melody_tokens)]
    assert len(told) == 1 + len(melody_pitches)  # at the start, then at each melody note
    cs = info.controls
    last = told[-1]
    assert last[cs.key_flag] == 1 and last[cs.density_flag] == 1  # key and density told
    times = np.array([s for s, _, _, _ in decode_notes(melody_tokens)]) / 100
    recent = times[times > times[-1] - 8.0]  # the melody's last 8 s: its notes per second
    lead = (len(recent) - 1) / max(recent[-1] - recent[0], 1.0)
    want = arranged["density"][int(np.searchsorted(LEAD_DENSITY_EDGES, lead, side="right"))]
    assert np.argmax(last[cs.density_start:cs.density_flag]) == cs.density_bin(want)
    assert set(np.flatnonzero(last[:12])) == {p % 12 for p in melody_pitches}  # within 20 s
    for choice in (None, ControlChoice.parse("Eb major", "free")):
        for made in accompany(model, melody_tokens, seed=5, controls=choice):
            streams = split(made.tokens, SATB)
            assert decode_notes(streams[0]) == [(s + 10, e + 10, p, v) for s, e, p, v in
                                                decode_notes(melody_tokens)]
            assert sum(len(decode_notes(s)) for s in streams[1:]) > 0


def test_generate_lead_track_picks_the_melody_by_name(duet_model, tmp_path):
    from neuralband.cli import main

    out = tmp_path / "alto.mid"
    assert main(["generate", "--model", str(duet_model), "--lead", str(CHORALES[0]),
                 "--lead-track", "alto", "-o", str(out), "--seed", "4", "-q"]) == 0
    alto = next(i for i in pretty_midi.PrettyMIDI(str(CHORALES[0])).instruments
                if i.name == "Alto")
    lead = pretty_midi.PrettyMIDI(str(out)).instruments[0]
    assert [n.pitch for n in lead.notes] == [n.pitch for n in alto.notes]


def test_melody_offsets_keep_the_band_under_the_melody_and_out_of_its_way():
    """Every band NOTE_ON, under every melody pitch: -under above it, -clash a second, tritone
    or seventh from it (any octave), both where both; every other token untouched."""
    voicing = Voicing(VoicedScheme(SATB))
    table = voicing.melody_offsets(Rules(under_melody=1.5, clash=0.25))
    assert table.shape == (128, voicing.vocab_size) and not table.flags.writeable
    s = DEFAULT_SETTINGS
    for tok in range(voicing.vocab_size):
        voice, base = int(voicing.voice_of[tok]), int(voicing.base_of[tok])
        if voice < 1 or s.kinds[base] != 0:  # the lead's, a TIME_SHIFT, not a NOTE_ON
            assert not table[:, tok].any()
            continue
        band = int(s.values[base])
        for mel in range(128):
            want = -1.5 * (band > mel) - 0.25 * ((mel - band) % 12 in (1, 2, 6, 10, 11))
            assert table[mel, tok] == want
    assert voicing.melody_offsets(Rules(under_melody=1.5, clash=0.25)) is table  # built once
    assert voicing.melody_offsets(Rules()) is None  # nothing asked: no offsets at all
    assert Voicing(VoicedScheme(SATB)).melody_offsets(Rules(clash=1)) is not None
    with pytest.raises(ValueError, match="nats"):
        Rules(under_melody=-1)


def test_the_melody_note_is_the_last_begun_of_those_held():
    note = MelodyNote()
    assert note.now is None
    assert note.update(60, True) == 60
    assert note.update(64, True) == 64  # a second note over it: the newer one
    assert note.update(64, False) == 60  # released: the older one sounds on
    assert note.update(62, False) == 60  # a NOTE_OFF of nothing held changes nothing
    assert note.update(60, False) is None  # a rest


def test_a_voice_packed_model_s_default_rules_listen_to_the_melody(duet_model):
    rules = model_rules(read_info(duet_model))
    assert (rules.under_melody, rules.clash) == (DUET_UNDER_MELODY, DUET_CLASH)
    assert model_rules(read_info(duet_model), under_melody=0.0).under_melody == 0.0
    plain = model_rules(read_info(bundled_model("chorale-folk")))
    assert (plain.under_melody, plain.clash) == (0.0, 0.0)


def _above_and_clashing(piece) -> tuple[float, float]:
    """Of a piece's band onsets made while the melody sounds: the share above the melody note
    (a unison is not above) and the share that clash with it."""
    notes = table_from_pretty_midi(decode_voices(piece.tokens, SATB))
    melody, band = notes.select(notes.group == 0), notes.select(notes.group > 0)
    at = melody_at(melody, band.start_s)
    heard = at >= 0
    mine, theirs = band.pitch[heard], melody.pitch[at[heard]]
    clash = ~np.isin((theirs - mine) % 12, sorted(CONSONANT_INTERVALS))
    return float(np.mean(mine > theirs)), float(np.mean(clash))


def test_accompanying_the_band_keeps_under_the_melody_when_asked(duet_model):
    """The same melody, seeds and model: a band pushed hard under the melody and off its
    clashes plays (nearly) never above it or against it; left alone, it does more often."""
    lead = soprano(CHORALES[1])
    alone = [_above_and_clashing(p) for p in accompany(
        duet_model, lead, 2, Rules(max_polyphony=4), seed=4)]
    kept = [_above_and_clashing(p) for p in accompany(
        duet_model, lead, 2, Rules(max_polyphony=4, under_melody=30, clash=30), seed=4)]
    above_alone, clash_alone = np.mean(alone, axis=0)
    above_kept, clash_kept = np.mean(kept, axis=0)
    assert above_kept <= 0.05 and clash_kept <= 0.05
    assert above_kept < above_alone or above_alone <= 0.05
    assert clash_kept < clash_alone - 0.05


def test_live_duet_band_keeps_under_the_player_s_note(duet_model):
    """Live, each player note picks the band's offsets: with a strong push the band's onsets
    made while the player holds a note are (nearly) never above it or against it."""
    msgs = melody(6.0)
    engine, out = session("duet", msgs, seconds=7.0, wait_s=0.5, model=duet_model,
                          rules=Rules(max_polyphony=4, under_melody=30, clash=30))
    start = engine.player.t0
    held = [(t, d[1], d[0] & 0xF0 == 0x90) for t, d in msgs]
    checked = above = clash = 0
    for t, d in out.sent:
        if d[0] & 0xF0 != 0x90 or not d[2]:
            continue
        now = MelodyNote()  # the player replayed up to then
        for at, p, on in held:
            if at <= t - start:
                now.update(p, on)
        if now.now is None:
            continue
        checked += 1
        above += d[1] > now.now
        clash += (now.now - d[1]) % 12 not in CONSONANT_INTERVALS
    assert checked >= 10
    assert above / checked <= 0.1 and clash / checked <= 0.1
    assert balanced(out.sent)
