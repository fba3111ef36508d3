"""Reading Server-Sent Event answers (the AI gateway's streamed chat) in tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def stream_events(response: httpx.Response) -> list[Any]:
    """The data of each Server-Sent Event: parsed JSON, or the text ``[DONE]``."""
    assert response.headers["content-type"].startswith("text/event-stream"), response.text
    events: list[Any] = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def streamed_text(events: list[Any]) -> str:
    """The content the chunks among ``events`` carry, joined."""
    return "".join(
        event["choices"][0]["delta"].get("content") or ""
        for event in events
        if isinstance(event, dict) and event.get("choices")
    )
