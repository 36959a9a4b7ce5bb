"""tuning.data.readers: loading, label handling, dataset arguments and every bad-input case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuning.data.readers import LABEL_COLUMN_NAMES, Dataset, load_dataset, load_datasets, resolve_dataset_paths
from tuning.errors import InputError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
HEADER = ["s0", "s1", "s2", "label"]


def good_rows(n_per_class=5, n_classes=2, label=lambda c: c):
    """Rows of 3 samples + label; class c has values around 10*c."""
    return [[10 * c + 0.5, 10 * c - 1.25, 10 * c + i] + [label(c)] for c in range(n_classes) for i in range(n_per_class)]


def input_error(path, **kwargs) -> str:
    """Load ``path`` expecting InputError; check the message is one line naming the file."""
    with pytest.raises(InputError) as info:
        load_dataset(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert str(Path(path).resolve()) in msg or str(path) in msg
    return msg


# ---------------------------------------------------------------- loading good files


def test_tiny_fixture_datasets(tiny_dataset_dir):
    t2, t3 = load_datasets("all", data_dir=tiny_dataset_dir)
    assert (t2.name, t3.name) == ("T2", "T3")
    assert (t2.n_classes, t3.n_classes) == (2, 3)
    assert t2.X.shape == (120, 48) and t3.X.shape == (180, 48)
    assert t3.label_column == "Track"
    assert t3.class_names == ("unit_a", "unit_b", "unit_c")
    assert t3.class_counts.tolist() == [60, 60, 60]


def test_shipped_a12():
    ds = load_dataset(DATA / "A12.csv")
    assert isinstance(ds, Dataset)
    assert ds.name == "A12" and ds.path == (DATA / "A12.csv").resolve() and ds.path.is_absolute()
    assert ds.X.shape == (4490, 48) and ds.length == 48 and ds.n_rows == 4490
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    assert ds.y.dtype == np.int64 and ds.y.shape == (4490,)
    assert ds.n_classes == 6 and ds.class_names == tuple(str(i) for i in range(6))
    assert ds.class_counts.tolist() == [1285, 967, 813, 598, 449, 378]
    assert ds.label_column == "label"
    assert ds.label_map() == {str(i): i for i in range(6)}
    assert np.isfinite(ds.X).all()


def test_all_shipped_names():
    assert [p.stem for p in resolve_dataset_paths("all", DATA)] == ["A2", "A3", "A4", "A12", "A21"]


def test_values_and_row_order(tmp_path, write_csv):
    path = write_csv(tmp_path / "v.csv", HEADER, good_rows())
    ds = load_dataset(path)
    assert ds.X[0].tolist() == [0.5, -1.25, 0.0]
    assert ds.X[5].tolist() == [10.5, 8.75, 10.0]
    assert ds.y.tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize("name", ["label", "LABEL", "Track", "track", "CLASS", "Unit", "y", "Y"])
@pytest.mark.parametrize("position", [0, 2, 4])
def test_label_column_detected_any_case_any_position(tmp_path, write_csv, name, position):
    header = ["a", "b", "c", "d"]
    header.insert(position, name)
    rows = []
    for r in good_rows():
        samples, lab = r[:3] + [r[0] + 1.0], r[3]
        samples.insert(position, lab)
        rows.append(samples)
    ds = load_dataset(write_csv(tmp_path / "d.csv", header, rows))
    assert ds.label_column == name
    assert ds.length == 4
    assert ds.y.tolist() == [0] * 5 + [1] * 5


def test_first_matching_name_wins(tmp_path, write_csv):
    rows = [[c + 7, i * 1.0, c] for c in range(2) for i in range(5)]
    ds = load_dataset(write_csv(tmp_path / "d.csv", ["unit", "s0", "label"], rows))
    assert ds.label_column == "unit"
    assert ds.class_names == ("7", "8")


def test_last_column_when_no_name_matches(tmp_path, write_csv):
    rows = [[1.0 * i, 2.0, c] for c in range(2) for i in range(5)]
    ds = load_dataset(write_csv(tmp_path / "d.csv", ["a", "b", "cluster"], rows))
    assert ds.label_column == "cluster" and ds.length == 2


def test_label_column_argument(tmp_path, write_csv):
    rows = [[c, 1.0 * i, 3.0, 9 - c] for c in range(2) for i in range(5)]
    path = write_csv(tmp_path / "d.csv", ["neuron", "s0", "s1", "label"], rows)
    ds = load_dataset(path, label_column="neuron")
    assert ds.label_column == "neuron"
    # Waveform columns by name (s0, s1): "label", no longer the label, is a metadata column, not a sample.
    assert ds.X.shape == (10, 2) and ds.metadata_columns == ("label",)
    assert load_dataset(path, label_column="NEURON").label_column == "neuron"
    assert (load_dataset(path, label_column="neuron").y == ds.y).all()


def test_label_column_argument_not_found(tmp_path, write_csv):
    path = write_csv(tmp_path / "d.csv", HEADER, good_rows())
    msg = input_error(path, label_column="cell")
    assert "'cell'" in msg and "s0, s1, s2, label" in msg and "--label-column" in msg


def test_one_based_labels(tmp_path, write_csv):
    ds = load_dataset(write_csv(tmp_path / "d.csv", HEADER, good_rows(n_classes=3, label=lambda c: c + 1)))
    assert ds.class_names == ("1", "2", "3")
    assert ds.y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert ds.label_map() == {"1": 0, "2": 1, "3": 2}


def test_sparse_labels_sorted_numerically(tmp_path, write_csv):
    sparse = {0: 12, 1: 3, 2: 7}
    ds = load_dataset(write_csv(tmp_path / "d.csv", HEADER, good_rows(n_classes=3, label=sparse.get)))
    assert ds.class_names == ("3", "7", "12")  # numeric, not string, order
    assert ds.y.tolist() == [2] * 5 + [0] * 5 + [1] * 5


def test_numeric_labels_written_differently_are_one_class(tmp_path, write_csv):
    rows = good_rows(n_classes=2)
    for i, r in enumerate(rows):
        r[3] = ["1", "1.0", "01"][i % 3] if r[3] == 1 else "0"
    ds = load_dataset(write_csv(tmp_path / "d.csv", HEADER, rows))
    assert ds.class_names == ("0", "1") and ds.class_counts.tolist() == [5, 5]


def test_string_labels_sorted(tmp_path, write_csv):
    names = {0: "pyramidal", 1: "basket", 2: "10"}
    ds = load_dataset(write_csv(tmp_path / "d.csv", HEADER, good_rows(n_classes=3, label=names.get)))
    assert ds.class_names == ("10", "basket", "pyramidal")
    assert ds.y.tolist() == [2] * 5 + [1] * 5 + [0] * 5


def test_whitespace_blank_lines_and_bom(tmp_path):
    path = tmp_path / "d.csv"
    body = "\n".join(f" {c}.5 , {i} ,{c} " for c in range(2) for i in range(5))
    path.write_text("\ufeffs0, s1 ,label\n" + body + "\n\n\n", encoding="utf-8")
    ds = load_dataset(path)
    assert ds.X.shape == (10, 2) and ds.label_column == "label"
    assert ds.X[0].tolist() == [0.5, 0.0]


def test_single_waveform_column(tmp_path, write_csv):
    ds = load_dataset(write_csv(tmp_path / "d.csv", ["v", "label"], [[float(i), i % 2] for i in range(10)]))
    assert ds.X.shape == (10, 1)


def test_min_rows_per_class_argument(tmp_path, write_csv):
    path = write_csv(tmp_path / "d.csv", HEADER, good_rows(n_per_class=3))
    assert load_dataset(path, min_rows_per_class=3).class_counts.tolist() == [3, 3]


def test_label_column_names_constant():
    assert LABEL_COLUMN_NAMES == ("label", "track", "class", "unit", "y")


# ---------------------------------------------------------------- bad input, one by one


def test_missing_file(tmp_path):
    msg = input_error(tmp_path / "nope.csv")
    assert "not found" in msg


def test_directory_is_not_a_file(tmp_path):
    msg = input_error(tmp_path)
    assert "not a file" in msg


@pytest.mark.parametrize("content", ["", "   \n\n \t\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "e.csv"
    path.write_text(content)
    assert "empty" in input_error(path)


def test_header_only(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("s0,s1,label\n")
    assert "no data rows" in input_error(path)


@pytest.mark.parametrize("n_fields", [3, 5])
def test_ragged_row(tmp_path, write_csv, n_fields):
    rows = good_rows()
    rows[3] = rows[3][:3] if n_fields == 3 else rows[3] + [1.0]
    msg = input_error(write_csv(tmp_path / "r.csv", HEADER, rows))
    assert "line 5" in msg  # header is line 1, rows[3] is line 5
    assert f"{n_fields} fields" in msg and "header has 4" in msg


def test_non_numeric_cell(tmp_path, write_csv):
    rows = good_rows()
    rows[6][1] = "12..5"
    msg = input_error(write_csv(tmp_path / "n.csv", HEADER, rows))
    assert "line 8" in msg and "'s1'" in msg and "'12..5'" in msg and "not a number" in msg


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_nan_or_inf_cell(tmp_path, write_csv, bad):
    rows = good_rows()
    rows[2][2] = bad
    msg = input_error(write_csv(tmp_path / "f.csv", HEADER, rows))
    assert "line 4" in msg and "'s2'" in msg and repr(bad) in msg and "finite" in msg


def test_value_beyond_float32(tmp_path, write_csv):
    rows = good_rows()
    rows[0][0] = "1e300"
    msg = input_error(write_csv(tmp_path / "big.csv", HEADER, rows))
    assert "line 2" in msg and "'s0'" in msg and "float32" in msg


def test_empty_waveform_cell(tmp_path, write_csv):
    rows = good_rows()
    rows[9][0] = ""
    msg = input_error(write_csv(tmp_path / "c.csv", HEADER, rows))
    assert "line 11" in msg and "'s0'" in msg and "empty" in msg


def test_only_one_column(tmp_path, write_csv):
    path = write_csv(tmp_path / "o.csv", ["label"], [[c % 2] for c in range(10)])
    msg = input_error(path)
    assert "one column" in msg


def test_semicolon_file_is_one_column(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("s0;s1;label\n" + "\n".join(f"{i};1;{i % 2}" for i in range(10)) + "\n")
    msg = input_error(path)
    assert "one column" in msg and "';'" in msg


def test_single_class(tmp_path, write_csv):
    rows = good_rows(n_classes=1)
    msg = input_error(write_csv(tmp_path / "s.csv", HEADER, rows))
    assert "single class" in msg and "'label'" in msg and "'0'" in msg


def test_class_too_small(tmp_path, write_csv):
    rows = good_rows(n_per_class=6, n_classes=2) + [[1.0, 2.0, 3.0, 2]] * 3
    msg = input_error(write_csv(tmp_path / "m.csv", HEADER, rows))
    assert "class '2' has 3 rows" in msg and "at least 5" in msg and "--folds" in msg
    msg = input_error(write_csv(tmp_path / "m.csv", HEADER, rows), min_rows_per_class=7)
    assert "class '0' has 6 rows" in msg and "class '2' has 3 rows" in msg and "at least 7" in msg


@pytest.mark.parametrize("missing", ["", "nan", "NaN"])
def test_empty_label_cell(tmp_path, write_csv, missing):
    rows = good_rows()
    rows[4][3] = missing
    msg = input_error(write_csv(tmp_path / "l.csv", HEADER, rows))
    assert "line 6" in msg and "'label'" in msg and "empty" in msg


def test_headerless_file(tmp_path, write_csv):
    path = write_csv(tmp_path / "nohead.csv", None, good_rows())
    msg = input_error(path)
    assert "line 1" in msg and "header" in msg


def test_integer_header_is_a_header(tmp_path, write_csv):
    # pandas' DataFrame(X).to_csv() writes 0,1,2,...: a legitimate header.
    ds = load_dataset(write_csv(tmp_path / "ints.csv", ["0", "1", "2", "3"], good_rows()))
    assert ds.label_column == "3" and ds.X.shape == (10, 3)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"s0,label\n\xff\xfe,1\n")
    assert "UTF-8" in input_error(path)


# ---------------------------------------------------------------- dataset arguments


@pytest.fixture
def named_dir(tmp_path, write_csv):
    d = tmp_path / "named"
    for name in ["A21", "A12", "A4", "A3", "A2"]:
        write_csv(d / f"{name}.csv", HEADER, good_rows())
    (d / "notes.txt").write_text("not a dataset")
    return d


def test_resolve_name(named_dir):
    assert resolve_dataset_paths("A12", named_dir) == [(named_dir / "A12.csv").resolve()]
    assert resolve_dataset_paths("a12", named_dir) == [(named_dir / "A12.csv").resolve()]


def test_resolve_all_natural_order(named_dir):
    paths = resolve_dataset_paths("all", named_dir)
    assert [p.stem for p in paths] == ["A2", "A3", "A4", "A12", "A21"]
    assert all(p.is_absolute() for p in paths)
    assert [d.name for d in load_datasets("all", named_dir)] == ["A2", "A3", "A4", "A12", "A21"]


def test_resolve_path(named_dir, tmp_path, write_csv, monkeypatch):
    other = write_csv(tmp_path / "elsewhere" / "mine.csv", HEADER, good_rows())
    assert resolve_dataset_paths(str(other), named_dir) == [other.resolve()]
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resolve_dataset_paths("mine.csv", named_dir) == [other.resolve()]
    assert resolve_dataset_paths("./mine.csv", named_dir) == [other.resolve()]
    # a bare file name not in the working directory falls back to data_dir
    assert resolve_dataset_paths("A4.csv", named_dir) == [(named_dir / "A4.csv").resolve()]


def test_unknown_name_lists_available(named_dir):
    with pytest.raises(InputError) as info:
        resolve_dataset_paths("A99", named_dir)
    msg = str(info.value)
    assert "\n" not in msg and "'A99'" in msg and "A2, A3, A4, A12, A21" in msg


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as info:
        resolve_dataset_paths(str(tmp_path / "gone" / "x.csv"), tmp_path)
    assert "not found" in str(info.value) and "\n" not in str(info.value)


def test_all_with_no_csv(tmp_path):
    (tmp_path / "empty").mkdir()
    for d in (tmp_path / "empty", tmp_path / "absent"):
        with pytest.raises(InputError) as info:
            resolve_dataset_paths("all", d)
        assert "no *.csv" in str(info.value) and str(d) in str(info.value)


def test_load_datasets_rejects_duplicate_names(named_dir, tmp_path, write_csv):
    other = write_csv(tmp_path / "copy" / "A12.csv", HEADER, good_rows())
    with pytest.raises(InputError) as info:
        load_datasets(["A12", str(other)], named_dir)
    msg = str(info.value)
    assert "\n" not in msg and "'A12'" in msg and str(other) in msg
    with pytest.raises(InputError):
        load_datasets(["A12", "A12"], named_dir)


def test_load_datasets_propagates_validation(named_dir):
    (named_dir / "A3.csv").write_text("")
    with pytest.raises(InputError) as info:
        load_datasets("all", named_dir)
    assert "A3.csv" in str(info.value)
