"""The corpus of one split: the cached manifest of real recordings (``training.sources``),
plus the cleaned copies (``training.cleanup``) and the text-to-speech voices
(``training.tts``) when asked for. A module above those three, so none of them imports
another back."""
from __future__ import annotations

from pathlib import Path

from training.cleanup import apply_cleaned, clean_tuxpaint
from training.sources import Clip, Corpus, _split_of_noise, build_manifest
from training.tts import build_tts

__all__ = ["load_corpus"]


def load_corpus(split: str, music: bool = False, tts_per_voice: int = 0,
                cleaned: bool = False, extra_noise: bool = False) -> Corpus:
    """The corpus of one split ("train" or "val") from the cached manifest; with
    ``tts_per_voice`` > 0 the training split also gets the text-to-speech voices of
    ``training.tts`` (that many utterances each; babble stays real speech). ``cleaned``:
    the training split's tuxpaint clips are replaced by their cleaned copies
    (``training.cleanup``, built on first use); the validation split is never cleaned.
    ``extra_noise``: the recordings of ``training.sources.EXTRA_NOISE`` too (split by file
    hash like the other noises)."""
    if split not in ("train", "val"):
        raise ValueError(split)
    m = build_manifest(music=music, extra_noise=extra_noise)
    # prompts shorter than 0.2 s (a few asterisk beeps/empty files) carry no speech
    speech = [Clip(**c) for c in m["speech"] if c["duration"] >= 0.2]
    noises = [Clip(**c) for c in m["noises"] if c["split"] == split]
    # music and key one-shots are split by file hash too
    music_files = [f for f in m["music"] if _split_of_noise(Path(f).name) == split]
    clips = [c for c in speech if c.split == split]
    babble = [c for c in speech if c.split == "train"]
    if cleaned and split == "train":
        mapping = clean_tuxpaint(speech, progress=True)["map"]
        clips, babble = apply_cleaned(clips, mapping), apply_cleaned(babble, mapping)
    if tts_per_voice > 0 and split == "train":
        clips += [Clip(**c) for c in build_tts(per_voice=tts_per_voice)]
    extra = [Clip(**c) for c in m.get("extra_noises", []) if c["split"] == split]
    return Corpus(split, clips, noises, list(m["keys"]), music_files, babble, extra)
