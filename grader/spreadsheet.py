"""Every CSV the kit writes goes through here: a cell that a spreadsheet would read as a formula is
neutralised.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and,
in some, a tab or a carriage return) as a formula, so a student named ``=HYPERLINK(...)`` could
put one in the instructor's gradebook. Such a text cell is written with a leading apostrophe,
which spreadsheets show as text and do not keep; numbers are written as they are (no score is
negative).
"""
import csv
import io

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    """``value`` as it is safe to write in a CSV cell."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header, rows):
    """The CSV of ``header`` and ``rows`` (sequences, or dicts keyed by the header), every cell safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([cell(h) for h in header])
    for row in rows:
        values = [row.get(h, "") for h in header] if isinstance(row, dict) else row
        writer.writerow([cell(v) for v in values])
    return buffer.getvalue()
