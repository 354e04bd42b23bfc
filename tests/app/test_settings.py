"""Settings: one definition per parameter, JSON config with corrupt-file recovery."""
from __future__ import annotations

import argparse
import json

import pytest

from percepnet.app.settings import (PARAMS, Settings, SettingsError, add_arguments,
                                    apply_arguments)


def test_defaults_and_validation():
    s = Settings()
    assert s.atten_limit_db == PARAMS["atten_limit_db"].default == 100.0
    s.atten_limit_db = 12
    assert s.atten_limit_db == 12.0
    with pytest.raises(SettingsError, match="outside 0..100 dB"):
        s.atten_limit_db = 120
    with pytest.raises(SettingsError):
        s.suppression = "maybe"
    with pytest.raises(SettingsError, match="unknown"):
        s.set("nope", 1)


def test_round_trip(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    s = Settings(path=path)
    s.atten_limit_db = 30.0
    s.input_device = "alsa_input.usb-mic"
    s.use_comb = False
    s.save()
    t = Settings.load(path)
    assert t.warnings == []
    assert (t.atten_limit_db, t.input_device, t.use_comb) == (30.0, "alsa_input.usb-mic", False)


def test_corrupt_config_is_backed_up_and_defaults_used(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{ this is not json")
    s = Settings.load(path)
    assert s.as_dict() == Settings().as_dict()
    assert len(s.warnings) == 1 and "unreadable" in s.warnings[0]
    backups = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{ this is not json"
    assert not path.exists()
    s.save()
    assert json.loads(path.read_text())["settings"]["atten_limit_db"] == 100.0


def test_bad_values_fall_back_per_key(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"settings": {"atten_limit_db": -5, "use_comb": False,
                                             "unknown_key": 3}}))
    s = Settings.load(path)
    assert s.atten_limit_db == 100.0 and s.use_comb is False
    assert len(s.warnings) == 1 and "atten_limit_db" in s.warnings[0]


def test_cli_flags_come_from_params():
    p = argparse.ArgumentParser()
    add_arguments(p, ["atten_limit_db", "suppression", "input_device"])
    args = p.parse_args(["--atten-limit-db", "20", "--no-suppression"])
    s = Settings()
    changed = apply_arguments(s, args)
    assert sorted(changed) == ["atten_limit_db", "suppression"]
    assert s.atten_limit_db == 20.0 and s.suppression is False
    with pytest.raises(SystemExit):
        p.parse_args(["--atten-limit-db", "500"])


def test_engine_kwargs_are_exactly_the_engines_controls():
    """One function turns settings into the engine's arguments: every parameter it passes
    is an Engine keyword, every Engine control with a product default comes from it, and
    the values are the settings' own."""
    import inspect

    from percepnet.app.engine import Engine
    from percepnet.app.settings import PARAMS, Settings, engine_kwargs

    s = Settings({"atten_limit_db": 12.0, "suppression": False, "latency_ms": 50.0})
    kw = engine_kwargs(s)
    params = inspect.signature(Engine).parameters
    assert set(kw) <= set(params)
    # the model and the devices are settings too, but build_engine resolves them (the model
    # loaded or pass-through, the demo clip, the null output)
    devices = {"model", "input_device", "output_device"}
    assert {n for n in params if n in PARAMS} - devices == set(kw)
    assert kw["atten_limit_db"] == 12.0 and kw["suppression"] is False
    assert kw["latency_ms"] == 50.0
