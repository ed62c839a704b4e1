"""The wait on trial (`neuralband.trial`): taken back, the model and the grammar are exactly as
before the wait; committed, exactly as if the wait had been fed."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neuralband.loaded import LoadedModel
from neuralband.trial import Trial

DUET = LoadedModel.open("pop-duet")


def _played(seed: int):
    """pop-duet's stepper and grammar after a few of its own events."""
    stepper, voicing = DUET.stepper(), DUET.voicing
    tracker = voicing.tracker(DUET.rules())
    rng = np.random.default_rng(seed)
    for _ in range(12):
        allowed = np.flatnonzero(voicing.band_mask(tracker.allowed(),
                                                   np.empty(voicing.vocab_size, bool)))
        tok = int(rng.choice(allowed))
        stepper.feed(tok)
        tracker.update(tok)
    return stepper, voicing, tracker


def _same(a, b) -> bool:
    """Two saved grammar states equal, arrays element by element."""
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 100))
def test_a_wait_taken_back_leaves_no_trace_and_a_committed_one_is_the_wait(seed, steps):
    stepper, voicing, tracker = _played(seed)
    shift = voicing.shift(steps)
    h, c, grammar = stepper.h.copy(), stepper.c.copy(), tracker.save()
    logits = stepper.logits().copy()
    trial = Trial(stepper)
    trial.begin(shift, tracker)
    assert trial.open
    trial.take_back()
    assert not trial.open
    np.testing.assert_array_equal(stepper.h, h)
    np.testing.assert_array_equal(stepper.c, c)
    np.testing.assert_array_equal(stepper.logits(), logits)
    assert _same(tracker.save(), grammar)

    trial.begin(shift, tracker)
    trial.commit()
    fed, fed_voicing, fed_tracker = _played(seed)
    fed.feed(shift)
    fed_tracker.update(shift)
    np.testing.assert_array_equal(stepper.h, fed.h)
    assert _same(tracker.save(), fed_tracker.save())


def test_again_puts_the_state_back_and_allows_only_the_times_after_the_wait():
    stepper, voicing, tracker = _played(7)
    h = stepper.h.copy()
    grammar = tracker.save()
    trial = Trial(stepper)
    trial.begin(voicing.shift(30), tracker)
    mask = np.empty(voicing.vocab_size, bool)
    later = trial.again(voicing, mask, 30)
    assert later is not None and not trial.open
    np.testing.assert_array_equal(stepper.h, h)
    assert _same(tracker.save(), grammar)
    waits = np.flatnonzero(later & voicing.is_shift)
    assert len(waits) and all(voicing.shift_steps[w] > 30 for w in waits)  # only longer waits
