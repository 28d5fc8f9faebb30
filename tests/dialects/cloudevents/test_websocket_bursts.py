"""A batch of events is cut into bursts of about ``BURST_BYTES``, each sent in one write."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.dialects.cloudevents.websocket import BURST_BYTES, bursts


def _cut_text_by_text(texts: list[bytes]) -> list[tuple[int, int]]:
    """The cut as its definition says: texts added to a run until it holds BURST_BYTES."""
    cuts = []
    start = 0
    while start < len(texts):
        end, size = start, 0
        while end < len(texts) and size < BURST_BYTES:
            size += len(texts[end])
            end += 1
        cuts.append((start, end))
        start = end
    return cuts


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 400),
            st.sampled_from([BURST_BYTES - 1, BURST_BYTES, BURST_BYTES + 1, 3 * BURST_BYTES]),
        ),
        max_size=400,
    )
)
def test_bursts_end_where_a_run_reaches_burst_bytes(sizes: list[int]) -> None:
    texts = [b"x" * size for size in sizes]
    cuts = list(bursts(texts))
    assert cuts == _cut_text_by_text(texts)
    # Every text is sent once, in order.
    assert [n for start, end in cuts for n in range(start, end)] == list(range(len(texts)))


def test_a_batch_of_events_is_cut_into_runs_of_burst_bytes() -> None:
    texts = [b"e" * 300] * 1000
    cuts = list(bursts(texts))
    per_burst = -(-BURST_BYTES // 300)  # the text that reaches the mark ends the run
    assert cuts[0] == (0, per_burst)
    assert all(end - start == per_burst for start, end in cuts[:-1])
    assert cuts[-1][1] == 1000
    assert list(bursts([])) == []
