"""Items delivered ahead of the delivered position: their encoding, the skip on
restart, and the log that holds them until the position passes."""

from __future__ import annotations

import base64

import pytest

from rwconsole.model import Exemplar, HistogramSample
from rwconsole.protocol import encode
from rwconsole.remote.ahead import AheadLog, DeliveredAhead, pack_items, unpack_items
from rwconsole.remote.chunks import Chunk

T0 = 1_700_000_000_000


def test_items_round_trip_through_their_encoding() -> None:
    samples = ([5, 13, 21, 3, 2**40], [T0, T0, T0 + 15_000, T0 - 5, 0])
    exemplars = ([7], [T0 + 1])
    items = (samples, exemplars, ([], []))
    assert unpack_items(pack_items(items)) == (
        (list(samples[0]), list(samples[1])),
        ([7], [T0 + 1]),
        ([], []),
    )


def test_a_scrapes_items_pack_small() -> None:
    refs = list(range(3, 16_003, 8))
    blob = pack_items(((refs, [T0] * len(refs)), ([], []), ([], [])))
    assert len(refs) == 2000
    assert len(blob) < 5 * len(refs), len(blob)  # the request body takes about 12


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"not snappy at all", "not snappy-compressed"),
        (encode.compress(b"\x09"), "unknown item column format 09"),
        (
            encode.compress(b"\x01" + (3).to_bytes(4, "little") + b"\0" * 8),
            r"samples refs: 3 values",
        ),
        (encode.compress(b"\x01" + b"\0" * 6), "exemplars: count cut off at byte 5"),
        (encode.compress(b"\x01" + b"\0" * 12 + b"extra"), "5 bytes after the item columns"),
    ],
)
def test_damaged_items_are_reported(blob: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        unpack_items(blob)


def _chunk() -> Chunk:
    return Chunk(
        end=(2, 100),
        refs=[1, 2, 1, 2, 1],
        timestamps=[T0, T0, T0 + 1, T0 + 1, T0 + 1],
        values=[1.0, 2.0, 3.0, 4.0, 5.0],
        start_timestamps=[0, 9, 0, 0, 0],
        exemplars=[Exemplar(ref=1, labels=(), value=1.0, timestamp=T0)],
        histograms=[HistogramSample(ref=2, timestamp=T0, histogram=None)],  # type: ignore[arg-type]
    )


def test_skip_leaves_out_each_delivered_item_once_and_keeps_columns_aligned() -> None:
    # (1, T0 + 1) is in the chunk twice and was delivered once.
    ahead = DeliveredAhead.of((2, 100), [(([2, 1], [T0, T0 + 1]), ([1], [T0]), ([], []))])
    chunk, skipped = ahead.skip(_chunk())
    assert skipped == 3
    assert chunk.end == (2, 100)
    assert chunk.refs == [1, 2, 1]
    assert chunk.timestamps == [T0, T0 + 1, T0 + 1]
    assert chunk.values == [1.0, 4.0, 5.0]
    assert chunk.start_timestamps == [0, 0, 0]
    assert chunk.exemplars == []
    assert [h.ref for h in chunk.histograms] == [2]
    assert ahead.total() == 0, "each recorded item is skipped once, then forgotten"
    again, skipped = ahead.skip(_chunk())
    assert skipped == 0 and again.refs == [1, 2, 1, 2, 1]


def test_the_saved_form_round_trips_and_damage_names_the_key() -> None:
    ahead = DeliveredAhead.of((3, 4096), [(([1, 1, 2], [T0, T0, T0]), ([], []), ([3], [T0]))])
    saved = ahead.to_json()
    assert saved["items"] == 4
    again = DeliveredAhead.from_json(saved)
    assert again.until == (3, 4096)
    assert again.counts == ({(1, T0): 2, (2, T0): 1}, {}, {(3, T0): 1})
    with pytest.raises(ValueError, match=r"until: expected \[segment, offset\]"):
        DeliveredAhead.from_json({**saved, "until": "3:4096"})
    with pytest.raises(ValueError, match="columns: not base64"):
        DeliveredAhead.from_json({**saved, "columns": "%%%"})
    with pytest.raises(ValueError, match="columns: not snappy"):
        DeliveredAhead.from_json({**saved, "columns": base64.b64encode(b"junk").decode()})
    with pytest.raises(ValueError, match="items: says 5, the columns hold 4"):
        DeliveredAhead.from_json({**saved, "items": 5})


def test_merged_adds_counts_and_takes_the_later_end() -> None:
    a = DeliveredAhead.of((1, 10), [(([1], [T0]), ([], []), ([], []))])
    b = DeliveredAhead.of((1, 50), [(([1, 2], [T0, T0]), ([], []), ([], []))])
    merged = a.merged(b)
    assert merged.until == (1, 50)
    assert merged.counts[0] == {(1, T0): 2, (2, T0): 1}
    assert a.total() == 1 and b.total() == 2, "merging leaves both as they were"


def test_the_log_forgets_batches_the_position_passed_and_hands_on_the_rest() -> None:
    log: AheadLog[str] = AheadLog()
    log.add(3, (([1], [T0]), ([], []), ([], [])))  # took from chunks 1 and 2
    log.add(4, token="parked-a")  # chunks up to 3
    log.add(6, (([2], [T0]), ([], []), ([], [])))  # chunks up to 5
    assert log.prune(1) == []
    assert len(log) == 3
    assert log.prune(3) == ["parked-a"]
    assert len(log) == 1
    log.add(7, token="parked-b")
    log.add(4, (([3], [T0]), ([], []), ([], [])))  # finished late, behind a newer one
    resolved = {"parked-b": (([9, 9], [T0, T0 + 1]), ([], []), ([], []))}
    ahead = log.collect((9, 0), 3, resolved.get)
    assert ahead.until == (9, 0)
    assert ahead.counts[0] == {(2, T0): 1, (9, T0): 1, (9, T0 + 1): 1}, "passed ones left out"
    assert len(log) == 0
