"""User settings: every user-facing parameter defined once, driving the CLI, the config file
and the UI.

Each :class:`Param` carries its default, range (or choices), unit and help text. The config
file is JSON under the platform config directory (``platformdirs.user_config_dir``), shared by
the window and the headless service. A corrupt or unreadable file is kept as a backup
(``settings.json.corrupt-<timestamp>``) and replaced by defaults with a warning; a value out of
range or of the wrong type falls back to its default (also with a warning); unknown keys are
dropped. Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import platformdirs

from percepnet.dsp.denoiser import ATTEN_LIMIT_DB_RANGE
from percepnet.dsp.stage_defaults import STAGE_DEFAULTS

__all__ = ["Param", "PARAMS", "STAGE_PARAMS", "ENGINE_PARAMS", "engine_kwargs", "stage_defaults",
           "Settings", "SettingsError",
           "config_path", "add_arguments", "apply_arguments", "CONFIG_FILE_NAME"]

log = logging.getLogger("percepnet.settings")

CONFIG_FILE_NAME = "settings.json"
FORMAT_VERSION = 1


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Param:
    """One user-facing parameter. ``kind`` is bool, float, int or str."""

    name: str
    kind: type
    default: Any
    help: str
    unit: str = ""
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    label: str = ""  # short UI label
    cli: bool = True  # exposed as a command-line flag

    def validate(self, value: Any) -> Any:
        """The value converted to ``kind``; SettingsError when it does not fit."""
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
                return False
            raise SettingsError(f"{self.name}: expected true/false, got {value!r}")
        if self.kind in (float, int):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise SettingsError(f"{self.name}: expected a number, got {value!r}")
            try:
                v = self.kind(value)
            except (TypeError, ValueError):
                raise SettingsError(f"{self.name}: expected a number, got {value!r}") from None
            if v != v:  # NaN
                raise SettingsError(f"{self.name}: expected a number, got NaN")
            if self.range is not None and not (self.range[0] <= v <= self.range[1]):
                lo, hi = self.range
                raise SettingsError(f"{self.name}: {v:g} is outside {lo:g}..{hi:g}"
                                    f"{' ' + self.unit if self.unit else ''}")
            return v
        if not isinstance(value, str):
            raise SettingsError(f"{self.name}: expected text, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise SettingsError(f"{self.name}: {value!r} is not one of {', '.join(self.choices)}")
        return value

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_PARAMS = [
    Param("suppression", bool, True, "noise suppression on (off: the microphone passes through "
          "unchanged, still 40 ms late so toggling never jumps)", label="Suppression"),
    Param("atten_limit_db", float, 100.0, "maximum attenuation: 0 dB = no suppression, "
          "100 dB = unlimited; lower values keep some background", unit="dB",
          range=ATTEN_LIMIT_DB_RANGE, label="Attenuation limit"),
    # the stage switches' defaults and the measurements behind them: percepnet.dsp.stage_defaults
    Param("use_comb", bool, STAGE_DEFAULTS["use_comb"], "pitch-tracked comb filter (removes noise between voice "
          "harmonics)", label="Comb filter"),
    Param("use_postfilter", bool, STAGE_DEFAULTS["use_postfilter"], "envelope postfilter (sharpens the gains on speech)",
          label="Postfilter"),
    Param("use_decay_cap", bool, STAGE_DEFAULTS["use_decay_cap"], "gain-decay cap: a band's gain falls by at most 0.6x "
          "per 10 ms (smoother release after speech, but noise lingers)", label="Decay cap"),
    Param("input_device", str, "", "input device (microphone); empty = system default",
          label="Input"),
    Param("output_device", str, "", "output device; empty = system default", label="Output"),
    Param("model", str, "", "model name from weights/ or a path to its .json; empty = the "
          "shipped default", label="Model"),
    Param("virtual_mic", bool, False, "route the cleaned voice to the virtual microphone "
          "\"PercepNet Microphone\" for meeting apps", label="Virtual microphone"),
    Param("monitor", bool, False, "listen to myself: also play the cleaned voice to the output "
          "device (in virtual-mic mode)", label="Listen to myself"),
    Param("latency_ms", float, 30.0, "requested device buffer latency (the sound server may "
          "raise it)", unit="ms", range=(5.0, 200.0), label="Device latency"),
    Param("device_rate_hz", int, 0, "sample rate to open the microphone and output device at: "
          "0 = 48 kHz where they take it, else their own rate (converted to and from 48 kHz "
          "inside the engine)", unit="Hz", range=(0, 384_000), label="Device rate"),
    Param("start_minimized", bool, False, "start the window minimised to the tray",
          label="Start minimised", cli=False),
    Param("first_run_done", bool, False, "the first-run hint was shown", cli=False),
]
PARAMS: dict[str, Param] = {p.name: p for p in _PARAMS}


#: The DSP stage switches among the parameters (booleans the engine can flip live).
STAGE_PARAMS = tuple(STAGE_DEFAULTS)


def stage_defaults() -> dict[str, bool]:
    """The stage switches' product defaults, as ``Denoiser`` keyword arguments."""
    return {name: PARAMS[name].default for name in STAGE_PARAMS}


#: The parameters that are the engine's live controls, in its keyword arguments' names.
ENGINE_PARAMS = ("atten_limit_db", "suppression", *STAGE_PARAMS, "latency_ms", "device_rate_hz")


def engine_kwargs(settings: "Settings") -> dict[str, Any]:
    """``settings`` as keyword arguments of ``engine.Engine`` (the one place that spells
    out which settings the engine takes)."""
    return {name: getattr(settings, name) for name in ENGINE_PARAMS}


def or_defaults(**values) -> tuple:
    """The given values in order, each None replaced by its parameter's default: how code
    that takes a user-facing parameter as an argument gets the one definition here."""
    return tuple(PARAMS[k].default if v is None else v for k, v in values.items())


def config_path() -> Path:
    """``$PERCEPNET_CONFIG`` if set, else ``<user config dir>/percepnet/settings.json``."""
    env = os.environ.get("PERCEPNET_CONFIG")
    if env:
        return Path(env)
    return Path(platformdirs.user_config_dir("percepnet", appauthor=False)) / CONFIG_FILE_NAME


class Settings:
    """The current values of :data:`PARAMS` (attribute access), loaded from / saved to JSON."""

    def __init__(self, values: dict[str, Any] | None = None, path: Path | None = None) -> None:
        object.__setattr__(self, "_values", {n: p.default for n, p in PARAMS.items()})
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "warnings", [])
        for k, v in (values or {}).items():
            self.set(k, v)

    # --------------------------------------------------------------- access
    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PARAMS:
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    def set(self, name: str, value: Any) -> None:
        if name not in PARAMS:
            raise SettingsError(f"unknown setting {name!r}")
        self._values[name] = PARAMS[name].validate(value)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    # --------------------------------------------------------------- files
    @classmethod
    def load(cls, path: str | Path | None = None) -> "Settings":
        """Settings from ``path`` (default :func:`config_path`); never raises for a bad file:
        a corrupt one is backed up and defaults are used (see :attr:`warnings`)."""
        path = Path(path) if path is not None else config_path()
        s = cls(path=path)
        if not path.exists():
            return s
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(path, backup)
                where = f"kept as {backup}"
            except OSError as exc2:
                where = f"could not back it up: {exc2}"
            s._warn(f"config file {path} is unreadable ({exc}); using defaults, the bad file is "
                    f"{where}")
            return s
        values = data.get("settings", data)
        for k, v in (values.items() if isinstance(values, dict) else []):
            if k not in PARAMS:
                continue
            try:
                s.set(k, v)
            except SettingsError as exc:
                s._warn(f"config file {path}: {exc}; using the default "
                        f"{PARAMS[k].default!r}")
        return s

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path is not None else (self.path or config_path())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, "settings": self._values},
                                  indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        object.__setattr__(self, "path", path)
        return path

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        log.warning(text)


# ------------------------------------------------------------------- command line

def add_arguments(parser: argparse.ArgumentParser, names: Iterable[str] | None = None) -> None:
    """Add ``--flag`` options for the named parameters (default: all with ``cli``). Their
    argparse default is None = "take it from the config file"."""
    for name in (names if names is not None else [n for n, p in PARAMS.items() if p.cli]):
        p = PARAMS[name]
        unit = f" [{p.unit}]" if p.unit else ""
        rng = f" ({p.range[0]:g}..{p.range[1]:g})" if p.range else ""
        if p.kind is bool:
            parser.add_argument(p.flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=f"{p.help} (default: {p.default})")
        else:
            parser.add_argument(p.flag, dest=name, default=None, metavar=p.unit.upper() or "VALUE",
                                type=_argtype(p),
                                help=f"{p.help}{unit}{rng} (default: {p.default!r})")


def _argtype(p: Param):
    def convert(text: str):
        try:
            return p.validate(text)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = p.kind.__name__
    return convert


def apply_arguments(settings: Settings, args: argparse.Namespace) -> list[str]:
    """Copy flags the user gave onto ``settings``; returns the names that changed."""
    changed = []
    for name in PARAMS:
        v = getattr(args, name, None)
        if v is not None:
            settings.set(name, v)
            changed.append(name)
    return changed
