import pytest

from vpolib.vbench import align, overlap, read_lines

SHORTS = ["a red fox running", "a stop sign", "two cats playing piano", "a boat at sea", "a city at night"]
LONGS = [
    "A sleek red fox is running through snow.",
    "A weathered stop sign at a corner.",
    "Two playful cats are playing a grand piano.",
    "A small boat drifts at sea under clouds.",
    "The city at night glows with neon.",
]


def test_overlap():
    assert overlap("a red fox", "The red fox sleeps") == 1.0
    assert overlap("a red fox", "a blue dog") == 0.0
    assert overlap("", "anything") == 0.0


def test_equal_counts_align_on_the_diagonal():
    pairs, rep = align(SHORTS, LONGS)
    assert pairs == [(i, i) for i in range(5)]
    assert rep["dropped_short"] == [] and rep["mean_overlap"] > rep["mean_overlap_shifted"]


def test_shifted_files_are_refused_not_paired():
    with pytest.raises(ValueError, match="misaligned"):
        align(SHORTS, LONGS[1:] + LONGS[:1])


def test_missing_long_line_is_dropped_and_reported():
    pairs, rep = align(SHORTS, LONGS[:2] + LONGS[3:])
    assert rep["dropped_short"] == [2] and rep["dropped_long"] == []
    assert pairs == [(0, 0), (1, 1), (3, 2), (4, 3)]


def test_extra_long_line_is_dropped_and_reported():
    pairs, rep = align(SHORTS, LONGS[:1] + ["Completely unrelated text about volcanoes."] + LONGS[1:])
    assert rep["dropped_long"] == [1]
    assert pairs == [(0, 0), (1, 2), (2, 3), (3, 4), (4, 5)]


def test_read_lines_counts_without_final_newline(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("one\ntwo\nthree")
    lines, facts = read_lines(p)
    assert lines == ["one", "two", "three"]
    assert facts["wc_l"] == 2 and facts["lines"] == 3 and facts["final_newline"] is False


def test_alignment_table_has_one_row_per_file():
    from vpolib.vbench import alignment_table

    report = {
        "set": "dimension",
        "teacher": "gpt4o",
        "short_lines": 946,
        "long_lines": 946,
        "long": {"wc_l": 945, "final_newline": False},
        "pairs": 945,
        "dropped_short": ["x"],
        "dropped_long": [],
        "mean_overlap": 0.5,
        "mean_overlap_shifted": 0.01,
        "zero_overlap": [1, 2],
    }
    row = alignment_table([report]).iloc[0].to_dict()
    assert row["wc -l of long file"] == 945 and row["final newline"] == False  # noqa: E712 - numpy bool
    assert (row["dropped"], row["mean overlap"], row["if shifted by 1"], row["zero-overlap pairs"]) == (
        1,
        0.5,
        0.01,
        2,
    )
