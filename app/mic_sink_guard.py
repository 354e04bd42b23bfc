"""Keeps other applications' audio out of the virtual microphone's internal sink.

The virtual microphone is a null sink plus a remap source (``virtual_mic_pulse``), and
browsers (so Meet, Teams and Zoom in a browser) list every sink as a speaker, ours included
("PercepNet Microphone Sink"). A user who picks it as the meeting's speaker feeds the far end
into our microphone: the other side hears itself. Neither server lets us hide a sink from
clients (``docs/sound-servers.md``), so the supervisor moves any stream that is not ours off
the sink, onto the server's default sink (or the first other sink when the default is ours),
within one poll, and reports it.

Ours: the engine's streams (they carry ``percepnet.stream``), and our own helper processes
(``application.name`` starting with ``percepnet``: the self-test's player).
"""
from __future__ import annotations

import logging
from typing import Any

__all__ = ["is_ours", "move_foreign_streams"]

log = logging.getLogger("percepnet.app.virtual_mic_pulse")

#: What our own processes call themselves on the server (pacat --client-name, PULSE_PROP).
OUR_APP_PREFIX = "percepnet"


def is_ours(proplist: dict[str, str]) -> bool:
    """A server stream that PercepNet itself plays into its sink."""
    if "percepnet.stream" in proplist:
        return True
    app = (proplist.get("application.name") or "").lower()
    return app.startswith(OUR_APP_PREFIX)


def _target_sink(pulse, ours) -> Any | None:
    default = pulse.server_info().default_sink_name
    others = [s for s in pulse.sink_list() if s.index != ours.index]
    for s in others:
        if s.name == default:
            return s
    # the default is our own sink (or gone): any other output, not another sink of ours
    others = [s for s in others if not s.name.startswith(ours.name)]
    return others[0] if others else None


def move_foreign_streams(pulse, sink) -> list[str]:
    """Move every stream playing into ``sink`` (a pulsectl sink: our null sink) that is not
    ours to another sink; returns one line per stream moved (or that could not be)."""
    moved = []
    foreign = [si for si in pulse.sink_input_list()
               if si.sink == sink.index and not is_ours(dict(si.proplist or {}))]
    if not foreign:
        return moved
    target = _target_sink(pulse, sink)
    shown = sink.description or sink.name
    for si in foreign:
        app = (si.proplist or {}).get("application.name") or si.name or "?"
        if target is None:
            moved.append(f"{app} plays into \"{shown}\", and there is no other output to "
                         "move it to")
            continue
        try:
            pulse.sink_input_move(si.index, target.index)
        except Exception as exc:  # noqa: BLE001 - gone meanwhile, or refused: report it
            moved.append(f"{app} plays into \"{shown}\"; moving it failed: {exc}")
            continue
        line = (f"{app} had \"{shown}\" as its speaker, which feeds the microphone; "
                f"moved it to {target.description or target.name}")
        log.warning("%s", line)
        moved.append(line)
    return moved
