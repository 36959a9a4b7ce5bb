"""tuning.data.readers's fast reader (pyarrow) against the line-by-line reader, gzip-compressed
datasets, and headerless files (issue 13, items 5 and 6).

The line-by-line reader (``_read_checked``) is the reference: for every file the fast
reader accepts, both give identical arrays; every file it refuses is explained by the
reference reader, so the messages in tests/test_data.py hold on either path.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from tuning.data import readers
from tuning.data.readers import dataset_name, load_dataset, load_datasets, resolve_dataset_paths
from tuning.errors import InputError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def one_line_error(path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        load_dataset(path, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg and str(Path(path).resolve()) in msg
    return msg


def assert_same(fast, checked):
    label_f, waves_f, X_f, y_f, names_f = fast
    label_c, waves_c, X_c, y_c, names_c = checked
    assert label_f == label_c and waves_f == waves_c and names_f == names_c
    assert X_f.dtype == X_c.dtype == np.float32 and X_f.flags.c_contiguous
    assert X_f.shape == X_c.shape
    assert np.array_equal(X_f.view(np.uint32), X_c.view(np.uint32))  # bit for bit
    assert y_f.dtype == y_c.dtype == np.int64 and np.array_equal(y_f, y_c)


def both_readers(path, label_column=None):
    path = Path(path).resolve()
    fast = readers._read_fast(path, label_column)
    assert fast is not None, "the fast reader refused a well-formed file"
    assert_same(fast, readers._read_checked(path, label_column))
    return fast


# ---------------------------------------------------------------- fast == checked


def test_shipped_files_read_fast_and_identically():
    for path in sorted(DATA.glob("*.csv")):
        both_readers(path)


def test_awkward_numbers_identical_to_the_bit(tmp_path):
    """Many digits, exponents, signs, tiny and huge (but float32) values, spaces."""
    rng = np.random.default_rng(7)
    values = rng.normal(0, 1, size=(300, 6)) * 10.0 ** rng.integers(-40, 38, size=(300, 6))
    cells = [[f"{v:.17g}" for v in row] for row in values]
    cells[0][:6] = ["1e-46", "-0", "+1.5", ".5", "5.", " 3.25 "]
    cells[1][:3] = ["1E5", "0001", "-1.2345678901234567890123e-3"]
    lines = ["a,b,c,d,e,f,label"] + [",".join(row + [str(i % 3 + 1)]) for i, row in enumerate(cells)]
    path = tmp_path / "awkward.csv"
    path.write_text("\n".join(lines) + "\n")
    _, _, X, y, names = both_readers(path)
    assert names == ("1", "2", "3") and X.shape == (300, 6)
    assert X[1, 0] == 1e5 and X[0, 0] == 0.0


@pytest.mark.parametrize("position", [0, 3, 6])
def test_string_labels_with_spaces_any_position(tmp_path, position):
    rng = np.random.default_rng(position)
    names = ["pyr", " basket", "10", "01 "]
    rows = []
    for i in range(40):
        row = [f"{v:.3f}" for v in rng.normal(size=6)]
        row.insert(position, names[i % 4])
        rows.append(",".join(row))
    header = [f"s{k}" for k in range(6)]
    header.insert(position, "Unit")
    path = tmp_path / "strings.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\r\n")
    label, layout, X, y, class_names = both_readers(path)
    assert layout.waveform_names == tuple(f"s{k}" for k in range(6)) and layout.metadata_names == ()
    assert label == "Unit" and class_names == ("01", "10", "basket", "pyr")


def test_numeric_labels_written_differently_fast(tmp_path):
    lines = ["s0,s1,label"] + [f"{i}.5,{i},{['1', '1.0', '01', '3', '3.0'][i % 5]}" for i in range(20)]
    path = tmp_path / "nums.csv"
    path.write_text("\n".join(lines))  # no final newline
    _, _, _, y, names = both_readers(path)
    assert names == ("1", "3") and np.bincount(y).tolist() == [12, 8]


def test_label_column_argument_fast(tmp_path):
    lines = ["neuron,s0,label"] + [f"{i % 2},{i}.25,{i % 3}" for i in range(12)]
    path = tmp_path / "arg.csv"
    path.write_text("\n".join(lines) + "\n")
    label, layout, X, _, _ = both_readers(path, "NEURON")
    # s0 names the waveform columns: "label", no longer the label, is metadata on both paths.
    assert label == "neuron" and X.shape == (12, 1) and layout.metadata_names == ("label",)


def test_many_blocks(tmp_path, monkeypatch):
    """Rows spread over many of pyarrow's blocks land in order."""
    rng = np.random.default_rng(1)
    values = np.round(rng.normal(0, 50, size=(5000, 16)), 2)
    lines = [",".join(f"s{k}" for k in range(16)) + ",label"]
    lines += [",".join(f"{v:.2f}" for v in row) + f",{i % 4}" for i, row in enumerate(values)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(readers, "FAST_BLOCK_BYTES", 1 << 14)  # about 40 blocks
    _, _, X, y, _ = both_readers(path)
    assert np.array_equal(X, values.astype(np.float32)) and y.tolist() == [i % 4 for i in range(5000)]


# ---------------------------------------------------------------- the fallback explains


@pytest.mark.parametrize("body, expected", [
    ("1,2,0\n3,4\n", "line 23 has 2 fields"),
    ("1,2,0\n3,4,1,9\n", "line 23 has 4 fields"),
    ("1,2,0\n3,nan,1\n", "is not a finite number"),
    ("1,2,0\n3,-inf,1\n", "is not a finite number"),
    ("1,2,0\n3,1e300,1\n", "too large for float32"),
    ("1,2,0\n3,,1\n", "the cell is empty"),
    ("1,2,0\n3,True,1\n", "'True' is not a number"),  # pandas would read this as 1.0
    ("1,2,0\n3,4,\n", "is empty"),
    ("1,2,0\n3,4,NaN\n", "is empty"),
    ("1,2,0\n3,\"x\",1\n", "'x' is not a number"),
])
def test_refused_files_are_explained_by_line(tmp_path, body, expected):
    rows = "".join(f"{i}.5,{i},{i % 2}\n" for i in range(20))
    path = tmp_path / "bad.csv"
    path.write_text("s0,s1,label\n" + rows + body)
    assert readers._read_fast(path.resolve(), None) is None
    msg = one_line_error(path)
    assert expected in msg, msg


def test_files_only_the_checked_reader_accepts_still_load(tmp_path):
    """Quoted cells, blank lines before the header, Python-only number forms: same result."""
    path = tmp_path / "odd.csv"
    path.write_text('\n\ns0,s1,label\n"1.5",1_000,"a"\n' + "".join(f"{i},2,{'ab'[i % 2]}\n" for i in range(10)))
    assert readers._read_fast(path.resolve(), None) is None
    ds = load_dataset(path)
    assert ds.X[0].tolist() == [1.5, 1000.0] and ds.class_names == ("a", "b")


# ---------------------------------------------------------------- headerless files


@pytest.mark.parametrize("first", [
    "12,-40,33,2",            # raw ADC counts
    "1.5,-2.25,3.0,1",
    "1e3,-2E-2,3.5e+1,0",
    " -12 , 7 ,  0 , 1 ",     # with spaces
    "-0.5,+3,.25,2",
    "0,1,2,4",                 # not the 0..n-1 of a pandas header
])
def test_headerless_file_is_reported(tmp_path, first):
    rows = "".join(f"{i},{i + 1},{i + 2},{i % 2}\n" for i in range(12))
    path = tmp_path / "nohead.csv"
    path.write_text(first + "\n" + rows)
    msg = one_line_error(path)
    assert "line 1" in msg and "header" in msg, msg


def test_pandas_integer_header_is_still_a_header(tmp_path):
    rows = "".join(f"{i}.5,{i},{i % 2}\n" for i in range(12))
    path = tmp_path / "pandas.csv"
    path.write_text("0,1,2\n" + rows)
    ds = load_dataset(path)
    assert ds.label_column == "2" and ds.X.shape == (12, 2)


# ---------------------------------------------------------------- gzip


def gzip_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return target


def test_csv_gz_loads_like_the_csv(tmp_path):
    gz = gzip_copy(DATA / "A12.csv", tmp_path / "A12.csv.gz")
    plain, packed = load_dataset(DATA / "A12.csv"), load_dataset(gz)
    assert packed.name == "A12" and dataset_name(gz) == "A12"
    assert np.array_equal(plain.X, packed.X) and np.array_equal(plain.y, packed.y)
    assert plain.class_names == packed.class_names
    assert_same(readers._read_fast(gz.resolve(), None), readers._read_checked(gz.resolve(), None))


def test_csv_gz_by_name_path_and_all(tmp_path):
    folder = tmp_path / "data"
    gzip_copy(DATA / "A2.csv", folder / "A2.csv.gz")
    shutil.copy(DATA / "A3.csv", folder / "A3.csv")
    assert resolve_dataset_paths("A2", folder) == [(folder / "A2.csv.gz").resolve()]
    assert resolve_dataset_paths("a2", folder) == [(folder / "A2.csv.gz").resolve()]
    assert resolve_dataset_paths(str(folder / "A2.csv.gz"), folder) == [(folder / "A2.csv.gz").resolve()]
    assert [d.name for d in load_datasets("all", folder)] == ["A2", "A3"]
    shutil.copy(DATA / "A2.csv", folder / "A2.csv")  # now A2 is there twice
    with pytest.raises(InputError) as info:
        resolve_dataset_paths("A2", folder)
    assert "ambiguous" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError) as info:
        load_datasets("all", folder)
    assert "two datasets are named 'A2'" in str(info.value)


def test_errors_in_a_csv_gz_name_the_line(tmp_path):
    text = "s0,s1,label\n" + "".join(f"{i}.5,{i},{i % 2}\n" for i in range(10)) + "1,x,0\n"
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    msg = one_line_error(path)
    assert "line 12" in msg and "'x' is not a number" in msg


def test_broken_gzip_is_one_error_line(tmp_path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"s0,label\n" + b"1,0\n" * 1000)[:-30])
    assert "gzip" in one_line_error(path)
    path.write_bytes(b"s0,label\n1,0\n")  # not compressed at all
    assert "gzip" in one_line_error(path)
