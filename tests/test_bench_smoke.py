"""The benchmarks' in-process paths still run against the current code (`make bench` is not part of `make test`,
so an API change could otherwise break it unnoticed, as removing ConversationStore.open once did)."""

from __future__ import annotations

from pathlib import Path

from bench import chat_turn, world


def test_the_raw_chat_turn_of_benchmark_3_streams_a_full_turn(database_url: str, tmp_path: Path) -> None:
    platform = world.build(database_url, tmp_path, queue="memory")
    try:
        member = world.new_member(platform, "bench")
        world.new_thread(platform, member, threads=2)
    finally:
        platform.close()
    turns = chat_turn.raw_turns(database_url, tmp_path, member, 1)  # raises unless the stream is a complete turn
    assert len(turns) == 1
    assert 0 < turns[0].ttfb <= turns[0].first_text <= turns[0].total
