"""ScrollBuffer: the views' in-place scrolling history."""
from __future__ import annotations

import numpy as np

from percepnet.ui.scroll_buffer import ScrollBuffer


def test_matches_a_rolled_history_for_any_chunking(rng):
    length, width = 37, 5
    buf = ScrollBuffer(length, (width,), fill=-1.0)
    history = np.full((length, width), -1.0, dtype=np.float32)
    counter = 0
    for _ in range(60):
        n = int(rng.integers(0, 90))  # chunks smaller and larger than the buffer
        rows = (counter + np.arange(n, dtype=np.float32))[:, None] * np.ones(width, np.float32)
        counter += n
        buf.push(rows)
        history = np.concatenate([history, rows])[-length:]
        np.testing.assert_array_equal(buf.view(), history)
    assert buf.rows_written == counter


def test_view_is_a_view_and_push_does_not_reallocate():
    buf = ScrollBuffer(10, (3,))
    store = buf._buf
    for i in range(25):
        buf.push(np.full((1, 3), i, dtype=np.float32))
        v = buf.view()
        assert np.shares_memory(v, store) and v.flags.c_contiguous
        assert v[-1, 0] == i and v[0, 0] == max(i - 9, 0)
    assert buf._buf is store


def test_one_dimensional_rows_with_nan_fill():
    buf = ScrollBuffer(4, (), fill=np.nan)
    assert np.isnan(buf.view()).all()
    buf.push(np.array([1.0, 2.0], dtype=np.float32))
    np.testing.assert_array_equal(buf.view()[-2:], [1.0, 2.0])
    assert np.isnan(buf.view()[:2]).all()
