"""Whose turn it is: the play modes' settings (`PlaySettings`) and the turn-taking decided from
them and the player's note times alone (`Turns`), shared by the event engine and the grid
engine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuralband.live.panel import PLAY_MODES

MODES = PLAY_MODES


@dataclass(frozen=True)
class PlaySettings:
    """How the band takes turns with the player."""

    mode: str = "call"
    wait_s: float = 1.0  # call: silence before the band answers; duet: how long it plays on
    answer_s: float = 4.0  # call: the longest answer
    channel: int = 0  # the band's MIDI channel (0-based); band voice k of a voiced model: +k-1
    thru: bool = False  # echo the player's notes to the output
    feedback_guard_s: float = 0.0  # ignore input equal to our own output this recent (0: off)
    in_channel: int | None = None  # only this channel's notes reach the model (0-based; None: all)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.wait_s < 0 or self.answer_s <= 0:
            raise ValueError("wait must be >= 0 and answer > 0 seconds")
        if not 0 <= self.channel <= 15:
            raise ValueError(f"channel must be 1..16, got {self.channel + 1}")
        if self.in_channel is not None and not 0 <= self.in_channel <= 15:
            raise ValueError(f"the input channel must be 1..16, got {self.in_channel + 1}")


class Turns:
    """Whose turn it is, from the mode and the player's note times alone (the event engine and
    the grid engine share it): solo always the band's; duet while the player holds a note or
    played within ``wait_s``; call an answer of at most ``answer_s`` after ``wait_s`` of
    silence, over as soon as the player plays again.

    The live controls override the mode: ``muted`` the band never plays, ``handed`` (the
    handover control) it plays until handed back, ``resting`` (after panic or an ending) it
    waits for the player to start again after a pause of ``wait_s`` (a player who plays on
    through the band's ending is finishing the piece, not starting the next)."""

    def __init__(self, settings: PlaySettings):
        self.settings = settings
        self.last_player_s = -np.inf  # time of the player's last note message
        self.answer_start: float | None = None
        self.played_since_answer = False
        self.phrase = (0.0, 0.0, 0)  # the player's phrase: first and last NOTE_ON, how many
        self.muted = False
        self.handed = False
        self.resting = False

    def heard(self, t: float, note_on: bool) -> None:
        """A note message of the player's at ``t``."""
        paused = t - self.last_player_s >= self.settings.wait_s
        self.last_player_s = t
        if note_on:
            first, _, n = self.phrase
            if not self.played_since_answer or self.answer_start is not None:
                first, n = t, 0  # a phrase begins (after an answer, or cutting one short)
            self.phrase = (first, t, n + 1)
            self.played_since_answer = True
            if paused:
                self.resting = False
            if self.settings.mode == "call":
                self.answer_start = None  # the player comes in: the answer is over

    def hand(self, to_band: bool) -> None:
        """The handover control: the band's turn until handed back, or the player's again (the
        mode decides from the player's next phrase on)."""
        self.handed = to_band
        if to_band:
            self.resting = False
        else:
            self.answer_start = None
            self.played_since_answer = False

    def rest(self) -> None:
        """The band stops until the player starts again (after panic, or an ending)."""
        self.resting = True
        self.handed = False
        self.answer_start = None
        self.played_since_answer = False

    def pace(self) -> float:
        """The player's last phrase's notes per second (over at least a second): how busily
        a call's answer plays."""
        first, last, n = self.phrase
        return min(16.0, max(0.5, n / max(last - first, 1.0)))

    def player_active(self, now: float, holding: bool) -> bool:
        return holding or now - self.last_player_s < self.settings.wait_s

    def band_may_play(self, now: float, holding: bool) -> bool:
        """Whether the band plays at ``now`` (``holding``: the player holds a note)."""
        if self.muted or self.resting:
            return False
        if self.handed:
            return True
        mode = self.settings.mode
        if mode == "solo":
            return True
        if mode == "duet":
            return self.player_active(now, holding)
        if self.answer_start is not None:
            if now - self.answer_start < self.settings.answer_s:
                return True
            self.answer_start = None
            self.played_since_answer = False
            return False
        if self.played_since_answer and not self.player_active(now, holding):
            self.answer_start = now
            return True
        return False

    def next_change(self, now: float) -> float:
        """When `band_may_play` may next change with no new input (inf: not before input). A
        player's pause that has already run out changes nothing more: the loop then sleeps until
        input (it spun on a duet whose player had stopped)."""
        s = self.settings
        if self.muted or self.resting or self.handed:
            return np.inf
        if s.mode == "call" and self.answer_start is not None:
            return self.answer_start + s.answer_s
        if (s.mode == "call" and self.played_since_answer) or s.mode == "duet":
            pause_ends = self.last_player_s + s.wait_s
            return pause_ends if pause_ends > now else np.inf
        return np.inf
