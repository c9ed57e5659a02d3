"""Every row of results/reliability.md, tried (tests/reliability_cases.py holds the table)."""
from pathlib import Path

import pytest

from reliability_cases import CASES, render
from suite.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("case", CASES, ids=[f"{n:02d}-{c.tried[:40]}" for n, c in enumerate(CASES, 1)])
def test_case(case, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # plug-in files written by a case's setup
    if case.kind == "API":
        with pytest.raises(case.expect) as info:
            case.call(tmp_path)
        message = str(info.value)
    else:
        if case.setup is not None:
            case.setup(tmp_path)
        code = main([a.replace("{tmp}", str(tmp_path)) for a in case.call])
        captured = capsys.readouterr()
        message = captured.err + captured.out
        assert code == case.expect, message
    for fragment in case.fragments:
        assert fragment in message, (fragment, message)


def test_the_committed_table_is_current():
    assert (ROOT / "results" / "reliability.md").read_text() == render(), \
        "regenerate: python tests/reliability_cases.py > results/reliability.md"
