"""Tidy rows -> CSV and Markdown, written atomically."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pandas as pd

from suite.core.errors import InvalidArgumentError

#: the folder every command writes its tables to unless told otherwise (``--output-dir``), in the current
#: directory: a command run in a clone never rewrites the committed tables under results/
#: (``--output-dir results`` does, on purpose)
DEFAULT_OUTPUT = "lyapbench-results"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename (never half-written)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    except OSError as exc:
        raise InvalidArgumentError("output directory", str(path.parent),
                                   f"a writable directory ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def frame(rows: List[Dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def write_csv(rows: List[Dict[str, Any]], path: Path, columns: Sequence[str]) -> None:
    atomic_write(path, frame(rows, columns).to_csv(index=False))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def _cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: Path, columns: Sequence[str] | None = None) -> List[Dict[str, Any]]:
    """Rows written by :func:`write_csv`, back as dicts: empty cells None, numbers int or float
    (floats round-trip exactly: pandas writes the shortest repr), True/False bool, the rest str.

    ``columns``: the columns the table must have (a missing one is a clear error naming it)."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InvalidArgumentError("table", str(path), "an existing CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError("table", str(path), f"a CSV file written by lyapbench ({exc})") from None
    missing = [c for c in columns or [] if c not in df.columns]
    if missing:
        import difflib
        close = {c: difflib.get_close_matches(c, list(df.columns), n=1) for c in missing}
        hint = "; ".join(f"did you mean {m[0]!r} for {c!r}?" for c, m in close.items() if m)
        raise InvalidArgumentError("table", str(path), f"a CSV file with the columns {missing} (it has "
                                   f"{list(df.columns)}{'; ' + hint if hint else ''})")
    return [{c: _cell(v) for c, v in r.items()} for r in df.to_dict("records")]


def _fmt(v: Any, markdown: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3g}"
    text = str(v).replace("\n", " ")
    return text.replace("|", "\\|") if markdown else text


def markdown(rows: List[Dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``columns`` of ``rows``."""
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(r.get(c), markdown=True) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def text_table(rows: List[Dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    """A fixed-width plain-text table for the terminal."""
    headers = list(headers or columns)
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells]) + "\n"
