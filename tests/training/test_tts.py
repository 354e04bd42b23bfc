"""Text-to-speech voices (training/tts.py): the real engines, fetched as Debian packages
(espeak-ng and flite, about 18 MB, into a temporary data cache), speak real sentences."""
from training_extras import require_training_extras

require_training_extras()

import numpy as np
import pytest

from training import tts
from training.sources import load48, measure_bandwidth


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    import os

    old = os.environ.get("PERCEPNET_DATA_DIR")
    os.environ["PERCEPNET_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    try:
        yield tts.engines()
    finally:
        if old is None:
            os.environ.pop("PERCEPNET_DATA_DIR")
        else:
            os.environ["PERCEPNET_DATA_DIR"] = old


@pytest.mark.parametrize("args", [["espeak", "-v", "de+f3", "-p", "60", "-s", "170"],
                                  ["espeak", "-v", "en+m3", "-p", "30", "-s", "140"],
                                  ["flite", "slt"]])
def test_engines_speak(tools, tmp_path, args):
    out = tmp_path / "x.wav"
    assert tts.synthesise(args, "Eine kleine Maus sitzt auf dem Tisch und frisst Käse.", out,
                          tools)
    x = load48(out)
    assert 1.5 < len(x) / 48000 < 8.0
    frames = x[: len(x) // 480 * 480].reshape(-1, 480)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    assert np.mean(level > level.max() - 30) > 0.4  # mostly voiced, not a click or silence
    assert 3000 < measure_bandwidth(x) < 12000  # 16 / 22.05 kHz engines


def _median_f0(x: np.ndarray) -> float:
    """Median fundamental (Hz) of the clearly periodic 40 ms frames (autocorrelation peak
    between 2.5 and 15 ms)."""
    lo, hi, n = 120, 720, 1920
    out = []
    for s in range(0, len(x) - n - hi, n // 2):
        a = x[s:s + n]
        r = np.array([np.dot(a, x[s + k:s + k + n]) for k in range(lo, hi)])
        norm = np.sqrt(np.dot(a, a) * np.array([np.dot(x[s + k:s + k + n], x[s + k:s + k + n])
                                               for k in range(lo, hi)])) + 1e-12
        c = r / norm
        if c.max() > 0.8:
            out.append(48000 / (lo + int(np.argmax(c))))
    assert len(out) >= 5
    return float(np.median(out))


def test_pitch_option_changes_the_voice(tools, tmp_path):
    """Different -p gives a different fundamental (the variety we train on)."""
    f0 = []
    for p in ("20", "80"):
        out = tmp_path / f"p{p}.wav"
        assert tts.synthesise(["espeak", "-v", "en+m1", "-p", p, "-s", "160"],
                              "Hello, how are you today? I am fine.", out, tools)
        f0.append(_median_f0(load48(out)))
    assert f0[1] > 1.2 * f0[0]


def test_failing_engine_leaves_nothing(tools, tmp_path):
    out = tmp_path / "bad.wav"
    assert not tts.synthesise(["espeak", "-v", "nosuchvoice"], "Some text.", out, tools)
    assert not out.exists()


def test_jobs_leave_out_validation_languages():
    rng = np.random.default_rng(0)
    sentences = {lang: ["Eine kleine Maus sitzt auf dem Tisch."]
                 for lang in set(tts.ESPEAK_LANGUAGES.values()) | {"da", "bg"}}
    jobs = tts._speak_jobs(rng, sentences, per_voice=2)
    speakers = {s for s, _, _ in jobs}
    assert not any(s.split("-")[2] in ("da", "bg") for s in speakers)
    assert len(speakers) >= 60 and all(s.startswith("tts-") for s in speakers)
