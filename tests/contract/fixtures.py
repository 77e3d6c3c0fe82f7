"""Contract fixtures: the shipped domain config and builders for valid events."""

from __future__ import annotations

import json
from typing import Any


def cost_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "cost",
        "event_id": "c-1",
        "org_unit": "1110",
        "period": "2024-03",
        "category": "substitutes",
        "amount_sek": 1_234_567.5,
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def as_bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()
