"""The lease table's extras column holds what a list of them would hold (model.ExtrasColumn)."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.model import ExtrasColumn, LeaseExtras

EXTRAS = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.builds(LeaseExtras, uid=st.one_of(st.none(), st.binary(min_size=1, max_size=8))),
)
#: (operation, row, extras or a batch): the ways the table writes its extras column.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.just(0), EXTRAS),
        st.tuples(st.just("extend"), st.just(0), st.lists(EXTRAS, max_size=6)),
        st.tuples(st.just("set"), st.integers(-50, 50), EXTRAS),
    ),
    max_size=60,
)


def stored(extras: object) -> object:
    """What the column gives back for ``extras``: nothing for any empty extras."""
    return extras or None


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_the_column_reads_back_what_a_list_would(operations: list[tuple[str, int, object]]) -> None:
    column, expected = ExtrasColumn(), []
    for operation, row, value in operations:
        if operation == "append":
            column.append(value)  # type: ignore[arg-type]
            expected.append(stored(value))
        elif operation == "extend":
            column.extend(value)  # type: ignore[arg-type]
            expected.extend(map(stored, value))  # type: ignore[call-overload]
        elif -len(expected) <= row < len(expected):
            column[row] = value  # type: ignore[assignment]
            expected[row] = stored(value)
        else:
            try:
                column[row] = value  # type: ignore[assignment]
            except IndexError:
                continue
            raise AssertionError(f"row {row} of {len(expected)} was written")
        assert list(column) == expected
    assert len(column) == len(expected)
    assert [column[-i] for i in range(1, len(expected) + 1)] == expected[::-1]
    assert list(pickle.loads(pickle.dumps(column))) == expected
    assert list(ExtrasColumn(column)) == expected


def test_rewritten_text_is_compacted_away() -> None:
    """Rows written again and again (a journal read forwards) leave no growing garbage."""
    column = ExtrasColumn([b"x" * 100] * 100)
    for round_ in range(400):
        for row in range(100):
            column[row] = bytes([round_ % 256]) * 100
    assert list(column) == [bytes([399 % 256]) * 100] * 100
    assert len(column._blob) <= 3 * (1 << 20)  # compaction bounds it: live text is 10 kB
