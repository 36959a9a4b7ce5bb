"""Opening a waveform CSV (plain or ``.csv.gz``): the one opener and its error messages.

Training's line-by-line reader, the fast reader's look at the header, ``predict``'s chunked
reading and the study's smoke copies all open files here, so a missing, unreadable, empty,
non-UTF-8, broken-gzip or headerless file gets the same one-line :class:`InputError`
whichever command met it.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

from tuning.errors import InputError

__all__ = ["is_gzip", "open_text", "open_csv", "count_lines", "is_data_line", "show"]


def is_gzip(path: str | Path) -> bool:
    """True for a ``.gz`` file name (any case)."""
    return Path(path).name.lower().endswith(".gz")


def existing_file(path: str | Path) -> Path:
    """``path`` resolved, once it is known to be an existing file; else one InputError line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: file not found; check the path or the dataset name")
    if not path.is_file():
        raise InputError(f"{path}: is not a file; pass a CSV file")
    return path.resolve()


def open_text(path: str | Path):
    """``(resolved path, text handle)`` of a file that exists and can be opened.

    gzip files are decompressed on the fly; ``utf-8-sig`` drops the byte-order mark that
    spreadsheet programs write; ``newline=""`` as the csv module wants. Decoding errors show
    when the handle is read: :func:`open_csv` turns them into InputError.
    """
    path = existing_file(path)
    opener = gzip.open if is_gzip(path) else open
    try:
        return path, opener(path, "rt", encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None


def open_csv(path: str | Path):
    """Open a waveform CSV (or ``.csv.gz``): ``(resolved path, header, header line, rows)``.

    ``header``: the first non-blank row, each name stripped. ``rows`` yields
    ``(line, cells)`` for every non-blank data row, lazily, so a caller can read a large file
    in chunks; close it to close the file. Raises :class:`InputError` for a missing,
    unreadable or empty file and a first line that is data, at once; for non-UTF-8 text, a
    broken gzip stream or a malformed line when its row is reached.
    """
    path, handle = open_text(path)
    rows = _csv_rows(path, handle)
    first = next(rows, None)
    if first is None:
        raise InputError(f"{path}: the file is empty; it needs a header line and one row per spike")
    header_line, header = first[0], [name.strip() for name in first[1]]
    if is_data_line(header):
        rows.close()
        raise InputError(
            f"{path}: line {header_line} looks like data, not a header (it starts {show(header[0])}); "
            "add a header line such as s0,...,s47,label"
        )
    return path, header, header_line, rows


def _csv_rows(path: Path, handle):
    reader = csv.reader(handle)
    with handle:
        try:
            for row in reader:
                # Blank lines (trailing newlines, spacing) carry no data.
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield reader.line_num, row
        except UnicodeDecodeError:
            raise InputError(f"{path}: is not UTF-8 text (near line {reader.line_num + 1}); "
                             "save it as a UTF-8 CSV") from None
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: is not a complete gzip file ({exc}); compress it again or pass "
                             "the plain CSV") from None
        except csv.Error as exc:
            raise InputError(f"{path}: line {reader.line_num}: malformed CSV ({exc}); "
                             "check the quoting on that line") from None


def count_lines(path: str | Path) -> int:
    """Lines of a plain file: its newlines, plus one for a last line without one (bytes, fast)."""
    count, last = 0, b"\n"
    with open(path, "rb") as stream:
        while block := stream.read(1 << 24):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def is_data_line(cells: list[str]) -> bool:
    """True when a first line is a spike rather than a header: every cell is a number.

    Raw ADC counts (integers) included, so the first spike never silently becomes the
    column names. The one all-number header kept is ``0,1,...,n-1``: the column names
    ``pandas.DataFrame(X).to_csv(index=False)`` writes.
    """
    for cell in cells:
        try:
            float(cell)
        except ValueError:
            return False
    return [c.strip() for c in cells] != [str(i) for i in range(len(cells))]


def show(value: str, limit: int = 40) -> str:
    """A cell for an error message: quoted, escaped to one line, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
