"""Parse human durations such as `90s`, `15m`, `1h30m`, `2d` into seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | int | float) -> float:
    """Return seconds; a bare number means seconds. Raise ValueError on anything else."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for part in _PART.finditer(text):
                if text[pos : part.start()].strip():
                    break
                seconds += float(part.group(1)) * _UNIT[part.group(2)]
                pos = part.end()
            if pos == 0 or text[pos:].strip():
                raise ValueError(f"invalid duration {value!r} (use e.g. 90s, 15m, 1h)")
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds
