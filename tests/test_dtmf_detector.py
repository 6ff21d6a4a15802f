"""In-band DTMF, the pure part: the Goertzel detector against synthetic key presses (every key,
both clock rates, through G.711), the limits it must keep (duration, level, twist), speech and
music that must not press a key, and the rule that counts a key once when it arrives twice."""

from __future__ import annotations

import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.dtmf import COLS, KEYS, ROWS, DtmfMethod, OnceOnly
from gateway.sip.tones import ToneDetector

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ROOT = Path(__file__).resolve().parent.parent
ALL_KEYS = "".join(KEYS)


def press(key: str, ms: float, rate: int = 8000, dbfs: float = -10.0, twist_db: float = 0.0) -> np.ndarray:
    """A key's two tones, each at `dbfs` peak (the column tone `twist_db` louder)."""
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    t = np.arange(int(rate * ms / 1000)) / rate
    amp = 32767 * 10 ** (dbfs / 20)
    col_amp = amp * 10 ** (twist_db / 20)
    return amp * np.sin(2 * np.pi * ROWS[row] * t) + col_amp * np.sin(
        2 * np.pi * COLS[KEYS[row].index(key)] * t
    )


def gap(ms: float, rate: int = 8000) -> np.ndarray:
    return np.zeros(int(rate * ms / 1000))


def detect(x: np.ndarray, rate: int = 8000, chunk: int = 640) -> list[tuple[str, float]]:
    pcm = np.clip(x, -32768, 32767).astype("<i2").tobytes()
    d = ToneDetector(rate)
    out = []
    for i in range(0, len(pcm), chunk):  # in pieces, as the taps deliver it
        out += d.feed(pcm[i : i + chunk])
    return out


@pytest.mark.parametrize("rate", [8000, 16000])
def test_every_key_at_both_rates_with_its_start_time(rate: int) -> None:
    x = np.concatenate(
        [gap(200, rate)] + [np.concatenate([press(k, 70, rate), gap(70, rate)]) for k in ALL_KEYS]
    )
    found = detect(x, rate)
    assert "".join(k for k, _ in found) == ALL_KEYS
    for i, (_, t) in enumerate(found):
        assert abs(t - (0.2 + i * 0.14)) < 0.02, found


@pytest.mark.parametrize("codec", ["alaw", "ulaw"])
def test_keys_survive_g711(codec: str) -> None:
    x = np.concatenate([gap(100)] + [np.concatenate([press(k, 60), gap(60)]) for k in ALL_KEYS])
    lin = np.clip(x, -32768, 32767).astype("<i2").tobytes()
    encode, decode = (
        (audioop.lin2alaw, audioop.alaw2lin) if codec == "alaw" else (audioop.lin2ulaw, audioop.ulaw2lin)
    )
    back = np.frombuffer(decode(encode(lin, 2), 2), dtype="<i2").astype(float)
    assert "".join(k for k, _ in detect(back)) == ALL_KEYS


def test_duration_a_40_ms_press_counts_a_20_ms_blip_does_not() -> None:
    assert [k for k, _ in detect(np.concatenate([gap(50), press("5", 40), gap(100)]))] == ["5"]
    assert detect(np.concatenate([gap(50), press("5", 20), gap(100)])) == []


def test_one_press_broken_by_a_dropout_counts_once_two_presses_count_twice() -> None:
    broken = np.concatenate([gap(50), press("7", 80), gap(10), press("7", 80), gap(100)])
    assert [k for k, _ in detect(broken)] == ["7"]
    two = np.concatenate([gap(50), press("7", 80), gap(60), press("7", 80), gap(100)])
    assert [k for k, _ in detect(two)] == ["7", "7"]


def test_level_and_twist_limits() -> None:
    assert detect(press("9", 100, dbfs=-30)) != []
    assert detect(press("9", 100, dbfs=-45)) == [], "too quiet to be a key"
    assert detect(press("9", 100, twist_db=3.5)) != [] and detect(press("9", 100, twist_db=-7.5)) != []
    assert detect(press("9", 100, twist_db=6)) == [] and detect(press("9", 100, twist_db=-10)) == []


def test_one_tone_or_three_tones_are_not_a_key() -> None:
    t = np.arange(800) / 8000
    assert detect(8000 * np.sin(2 * np.pi * 941 * t)) == []
    three = 8000 * (np.sin(2 * np.pi * 852 * t) + np.sin(2 * np.pi * 1477 * t) + np.sin(2 * np.pi * 1209 * t))
    assert detect(three) == []


def test_speech_does_not_press_keys() -> None:
    """The shipped prompts: about half a minute of synthetic speech, at both clock rates."""
    total = 0.0
    for f in sorted((ROOT / "ivr_prompts").glob("*/*.wav")):
        with wave.open(str(f)) as w:
            rate, pcm = w.getframerate(), w.readframes(w.getnframes())
        assert w.getnchannels() == 1
        x = np.frombuffer(pcm, dtype="<i2").astype(float)
        assert detect(x, rate) == [], f.name
        if rate == 8000:
            up = np.repeat(x, 2)  # the same speech on a 16 kHz bridge
            assert detect(up, 16000) == [], f.name
        total += len(x) / rate
    assert total > 20


def test_music_does_not_press_keys() -> None:
    """Two minutes of chords (three notes of the tempered scale, four harmonics each) and of
    two-note intervals, quarter-second notes: DTMF pairs sit between musical intervals."""
    rate, rng = 8000, np.random.default_rng(7)
    t = np.arange(rate // 4) / rate
    for notes_per_chord in (2, 3):
        pieces = []
        for _ in range(240):
            notes = 220 * 2 ** (rng.integers(0, 36, notes_per_chord) / 12)
            pieces.append(
                sum(a * np.sin(2 * np.pi * n * h * t) for n in notes for h, a in ((1, 1), (2, 0.5), (3, 0.3)))
            )
        x = np.concatenate(pieces)
        assert detect(x / np.abs(x).max() * 20000) == []


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(ALL_KEYS), st.integers(45, 200), st.integers(45, 200), st.floats(-28, -3)),
        min_size=1,
        max_size=8,
    ),
    st.integers(0, 2**32 - 1),
    st.sampled_from([8000, 16000]),
)
def test_key_sequences_in_noise_come_out_as_pressed(
    presses: list[tuple[str, int, int, float]], seed: int, rate: int
) -> None:
    rng = np.random.default_rng(seed)
    parts = [gap(60, rate)]
    for key, on, off, level in presses:
        parts += [press(key, on, rate, dbfs=level), gap(off, rate)]
    x = np.concatenate(parts)
    x = x + rng.normal(0, 32767 * 10 ** (-50 / 20), x.size)  # a quiet line
    assert "".join(k for k, _ in detect(x, rate, chunk=int(rng.integers(2, 2000)) * 2)) == "".join(
        k for k, *_ in presses
    )


def test_a_key_seen_twice_counts_once() -> None:
    once = OnceOnly()
    assert once.first("caller", "5", DtmfMethod.INBAND, 1.00)
    assert not once.first("caller", "5", DtmfMethod.RFC4733, 1.05), "the event of the same press"
    assert once.first("caller", "5", DtmfMethod.RFC4733, 2.00), "a later press"
    assert once.first("caller", "5", DtmfMethod.RFC4733, 2.10), "two events are two presses"
    assert once.first("pbx", "5", DtmfMethod.INBAND, 2.12), "another leg"
    assert once.first("caller", "6", DtmfMethod.INBAND, 2.15), "another key"


def test_methods() -> None:
    assert DtmfMethod.AUTO.accepts(DtmfMethod.INBAND) and DtmfMethod.AUTO.accepts(DtmfMethod.INFO)
    assert DtmfMethod.RFC4733.accepts(DtmfMethod.RFC4733) and not DtmfMethod.RFC4733.accepts(
        DtmfMethod.INBAND
    )
    assert DtmfMethod.INBAND.listens_inband and not DtmfMethod.INFO.listens_inband
