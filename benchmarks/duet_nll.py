"""Does the duet model listen? NLL of the band's events with the lead present and with it hidden.

A voice-packed model (`encoders.voices`) predicts the band's events from everything before them,
the lead's events included. If it uses what the lead plays, hiding the lead must cost it: the band
events of held-out pieces are scored twice, by the same model, in one run:

1. ``lead present``: the piece as encoded (lead and band interleaved on one clock);
2. ``lead hidden``: the same piece with the lead's events taken out (`split`, an empty lead,
   `merge`): the band's events and times are unchanged, only the melody is gone;
3. ``band unigram``: the naive baseline, each band event by its frequency in the train split.

A model trained with key and density controls (``--controls``) is also scored as it plays: the
lead present and the key of the lead heard so far told to it, with the density of the data's
arrangements under a lead as busy where the model keeps it (``lead present, its key told``;
`neuralband.steering.steer`), against the lead hidden and nothing told, which is all a band that
does not listen would have.

Scored over whole pieces, the band always has its own past to go on. Live it does not: it comes
in when the player starts, having heard only the tune. So a second table scores the band
**coming in**: each valid piece is cut at entry points (every ``--entry-every`` seconds from
20 s), the band's events before the entry left out (`encoders.voices.band_enters`), and the band
events of the ``--entry-span`` seconds after it scored with the lead heard and hidden.

NLL is in nats per band event (NOTE_ON, NOTE_OFF and VELOCITY of voices 1..; TIME_SHIFTs are
shared, so they are left out of both), over the dataset's valid split, each piece scored from its
second token on by the numpy `Stepper` (teacher forcing, all pieces as one batch). NOTE_ON NLL is
also shown: which note the band picks is where the melody should help most.

With ``--out DIR`` it also writes, for auditioning, the accompaniment the model samples for the
first valid piece's melody (``accompaniment.mid``: lead + band tracks) and that piece as written
(``original.mid``).

Run from the repository root (the dataset comes from examples/train_duet_model.sh)::

    python benchmarks/duet_nll.py --model duet --dataset data/duet-dataset --out data/duet-audition
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_model, print_rows  # noqa: E402
from neuralband.encoders.voices import (  # noqa: E402
    VoiceSettings,
    band_enters,
    decode_voices,
    event_steps,
    merge,
    split,
)
from neuralband.modelfile import read_info  # noqa: E402
from neuralband.runtime import Stepper  # noqa: E402
from neuralband.steering import FOLLOW, FREE, ControlChoice, Steering  # noqa: E402
from neuralband.training.windows import read_dataset, split_pieces  # noqa: E402


def hide_lead(tokens: np.ndarray, scheme: VoiceSettings) -> np.ndarray:
    """The same piece without the lead's events; the band's events keep their times."""
    streams = split(tokens, scheme)
    streams[0] = streams[0][:0]
    return merge(streams, scheme)


def entries(pieces: list[np.ndarray], scheme: VoiceSettings, every_s: float, span_s: float
            ) -> tuple[list[np.ndarray], list[int]]:
    """Each piece cut at entry points every ``every_s`` seconds from 20 s on: its tokens up to
    ``span_s`` seconds after the entry, with the band coming in there; and the entry's step."""
    per_s = scheme.settings.steps_per_second
    cuts, starts = [], []
    for piece in pieces:
        step = _steps(piece, scheme)
        at = 20 * per_s
        while at + span_s * per_s <= step[-1]:
            end = int(np.searchsorted(step, at + span_s * per_s, side="right"))
            cuts.append(band_enters(piece[:end], scheme, at))
            starts.append(at)
            at += round(every_s * per_s)
    return cuts, starts


def _steps(tokens: np.ndarray, scheme: VoiceSettings) -> np.ndarray:
    """The step each token ends at (the clock after it)."""
    return event_steps(scheme.unpack(tokens)[1], scheme.settings)[1]


def band_nll(model: str, seqs: list[np.ndarray], scheme: VoiceSettings,
             from_step: list[int] | None = None, told: bool = False
             ) -> tuple[float, float, float, int]:
    """Mean NLL of the band's events (and of its NOTE_ONs alone, and of its events given that
    the next event is not the lead's), all pieces in one batch; with ``from_step``, only the
    band's events from that step of each piece on. ``told``: a conditioned model is also told
    the key of the lead heard so far (and the arrangement density it says), as it is when it
    plays (`neuralband.steering.steer`, each lead NOTE_ON heard after it is fed); otherwise its
    controls stay "no control"."""
    stepper = Stepper.load(model, batch=len(seqs))
    steerings = None
    if told:
        info = read_info(model)
        if info.controls is None:
            raise ValueError(f"{model} reads no controls: there is no key to tell it")
        arranged = info.summary.get("arrangement_density")
        choice = ControlChoice(density=FOLLOW if arranged else FREE)
        steerings = [Steering(info.controls, choice, arranged) for _ in seqs]
        controls = np.zeros((len(seqs), info.controls.size), np.float32)
        per_s = scheme.settings.steps_per_second
        clocks = [_steps(s, scheme) for s in seqs]
    length = max(len(s) for s in seqs)
    idle = scheme.time_shift  # padding after a piece ends; never scored
    grid = np.full((len(seqs), length), idle, np.int64)
    for i, s in enumerate(seqs):
        grid[i, :len(s)] = s
    voice, base = scheme.unpack(grid)
    scored = (voice > 0) & (np.arange(length) < np.array([len(s) for s in seqs])[:, None])
    scored[:, 0] = False
    if from_step is not None:
        clock = np.stack([np.pad(_steps(s, scheme), (0, length - len(s)), mode="edge")
                          for s in seqs])
        scored &= clock >= np.array(from_step)[:, None]
    is_on = scored & (base < 128)
    lead = scheme.unpack(np.arange(scheme.vocab_size))[0] == 0
    total = np.zeros(len(seqs))
    total_on = np.zeros(len(seqs))
    not_lead = np.zeros(len(seqs))  # sum of log(1 - p(lead next)) where a band event is next
    rows = np.arange(len(seqs))
    for t in range(length):
        if t:
            logits = stepper.logits().astype(np.float64)
            top = logits.max(axis=1, keepdims=True)
            e = np.exp(logits - top)
            z = e.sum(axis=1)
            nll = top[:, 0] + np.log(z) - logits[rows, grid[:, t]]
            total += np.where(scored[:, t], nll, 0.0)
            total_on += np.where(is_on[:, t], nll, 0.0)
            p_lead = e[:, lead].sum(axis=1) / z
            not_lead += np.where(scored[:, t], np.log1p(-np.minimum(p_lead, 1 - 1e-12)), 0.0)
        stepper.feed(grid[:, t])
        if steerings is not None:
            heard = np.flatnonzero((voice[:, t] == 0) & (base[:, t] < 128)
                                   & (t < np.array([len(s) for s in seqs])))
            for row in heard:  # as `generate.accompany` does: from the next token on
                controls[row] = steerings[row].heard(clocks[row][t] / per_s, int(base[row, t]))
            if len(heard):
                stepper.set_controls(controls)
    n = scored.sum()
    return (float(total.sum() / n), float(total_on.sum() / is_on.sum()),
            float((total.sum() + not_lead.sum()) / n), int(n))


def unigram_nll(train: list[np.ndarray], valid: list[np.ndarray], scheme: VoiceSettings,
                ) -> tuple[float, float]:
    """Band events scored by their train-split frequency (add-one smoothed over band events)."""
    counts = np.ones(scheme.vocab_size)
    for s in train:
        counts += np.bincount(s, minlength=scheme.vocab_size)
    voice_all, base_all = scheme.unpack(np.arange(scheme.vocab_size))
    band = voice_all > 0
    logp = np.log(counts / counts[band].sum())
    toks = np.concatenate([s[1:] for s in valid])
    v, b = scheme.unpack(toks)
    mine = v > 0
    on = mine & (b < 128)
    on_logp = np.log(counts / counts[band & (base_all < 128)].sum())
    return float(-logp[toks[mine]].mean()), float(-on_logp[toks[on]].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="duet", help="a voice-packed model (default: bundled)")
    ap.add_argument("--dataset", default="data/duet-dataset",
                    help="the voice-packed dataset it was trained on (its valid split is scored)")
    ap.add_argument("--out", help="write a held-out melody's accompaniment here, for auditioning")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--entry-every", type=float, default=40.0,
                    help="seconds between the points where the band comes in (default: 40)")
    ap.add_argument("--entry-span", type=float, default=10.0,
                    help="seconds of the band scored after it comes in (default: 10)")
    args = ap.parse_args()

    dataset = Path(args.dataset)
    if not (dataset / "settings.json").exists():
        print(f"duet_nll: no dataset at {dataset}; make it with examples/train_duet_model.sh",
              file=sys.stderr)
        return 2
    data, model_info = read_dataset(dataset)[0], read_info(args.model)
    if not data.voiced or model_info.scheme.to_dict() != data.to_dict():
        print(f"duet_nll: {dataset} ({data.to_dict()}) and the model "
              f"({model_info.scheme.to_dict()}) must "
              "share one voice scheme", file=sys.stderr)
        return 2
    scheme = data.voice_settings
    valid = list(split_pieces(dataset, "valid"))
    train = list(split_pieces(dataset, "train"))
    start = time.perf_counter()
    present, present_on, present_own, events = band_nll(args.model, valid, scheme)
    hidden, hidden_on, hidden_own, _ = band_nll(
        args.model, [hide_lead(s, scheme) for s in valid], scheme)
    told = model_info.controls is not None
    present_told = band_nll(args.model, valid, scheme, told=True) if told else None
    uni, uni_on = unigram_nll(train, valid, scheme)
    cuts, starts = entries(valid, scheme, args.entry_every, args.entry_span)
    enter = band_nll(args.model, cuts, scheme, starts)
    enter_hidden = band_nll(args.model, [hide_lead(c, scheme) for c in cuts], scheme, starts)
    enter_told = band_nll(args.model, cuts, scheme, starts, told=True) if told else None
    elapsed = time.perf_counter() - start

    print(f"duet NLL: {args.model} on {len(valid)} valid pieces of {dataset} "
          f"({events:,} band events; {cpu_model()}, {platform.python_version()})")
    print_rows(["condition", "band events NLL", "band NOTE_ON NLL", "band's own draw NLL"], [
        ["lead present", f"{present:.4f}", f"{present_on:.4f}", f"{present_own:.4f}"],
        *([["lead present, its key told", *(f"{x:.4f}" for x in present_told[:3])]]
          if told else []),
        ["lead hidden", f"{hidden:.4f}", f"{hidden_on:.4f}", f"{hidden_own:.4f}"],
        ["band unigram", f"{uni:.4f}", f"{uni_on:.4f}", ""],
    ])
    gain = hidden - present
    own_gain = hidden_own - present_own
    print(f"listening gain: {gain:.4f} nats per band event ({gain / hidden:.1%} of the hidden NLL);"
          f" in the band's own draw (the lead's next events left out, as the band draws): "
          f"{own_gain:.4f}; scored in {elapsed:.1f} s")
    print(f"\nthe band coming in: {len(cuts)} entries, every {args.entry_every:g} s from 20 s, "
          f"its first {args.entry_span:g} s scored ({enter[3]:,} band events)")
    print_rows(["condition", "band events NLL", "band NOTE_ON NLL", "band's own draw NLL"], [
        ["lead present", *(f"{x:.4f}" for x in enter[:3])],
        *([["lead present, its key told", *(f"{x:.4f}" for x in enter_told[:3])]]
          if told else []),
        ["lead hidden", *(f"{x:.4f}" for x in enter_hidden[:3])],
    ])
    enter_gain = enter_hidden[2] - enter[2]
    print(f"listening gain coming in (own draw): {enter_gain:.4f} nats per band event; "
          f"NOTE_ONs: {enter_hidden[1] - enter[1]:.4f}")
    if told:  # what the band hears when it plays: the melody's events and the key they say
        print(f"as it plays (the lead's events and its key told, against neither): whole pieces "
              f"{hidden_own - present_told[2]:.4f}, coming in {enter_hidden[2] - enter_told[2]:.4f}"
              f" nats per band event (own draw); NOTE_ONs {hidden_on - present_told[1]:.4f}, "
              f"{enter_hidden[1] - enter_told[1]:.4f}")

    if args.out:
        from neuralband.generate import accompany

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        piece = valid[0]
        melody = split(piece, scheme)[0]
        decode_voices(piece, scheme).write(str(out / "original.mid"))
        made = accompany(args.model, melody, seed=args.seed)[0]
        decode_voices(made.tokens, scheme).write(str(out / "accompaniment.mid"))
        print(f"wrote {out / 'accompaniment.mid'} (the first valid melody, band sampled) and "
              f"{out / 'original.mid'}")

    print(json.dumps({
        "benchmark": "duet_nll", "model": str(args.model), "dataset": str(dataset),
        "valid_pieces": len(valid), "band_events": events,
        "nll_lead_present": round(present, 4), "nll_lead_hidden": round(hidden, 4),
        "nll_band_unigram": round(uni, 4), "note_on_nll_lead_present": round(present_on, 4),
        "note_on_nll_lead_hidden": round(hidden_on, 4), "note_on_nll_unigram": round(uni_on, 4),
        "own_draw_nll_lead_present": round(present_own, 4),
        "own_draw_nll_lead_hidden": round(hidden_own, 4),
        "listens": bool(present < hidden), "entries": len(cuts),
        "entering_own_draw_nll_lead_present": round(enter[2], 4),
        "entering_own_draw_nll_lead_hidden": round(enter_hidden[2], 4),
        "entering_note_on_nll_lead_present": round(enter[1], 4),
        "entering_note_on_nll_lead_hidden": round(enter_hidden[1], 4),
        **({"own_draw_nll_lead_told": round(present_told[2], 4),
            "note_on_nll_lead_told": round(present_told[1], 4),
            "entering_own_draw_nll_lead_told": round(enter_told[2], 4),
            "entering_note_on_nll_lead_told": round(enter_told[1], 4)} if told else {}),
        "cpu": cpu_model(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
