"""Every spec in invalid/ fails with exit code 2, one line per problem, naming the file and
the expected fragment (the file's `# expect:` line); nothing is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clmrepro.cli import main
from clmrepro.spec import SpecError, load_spec

CORPUS = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def expected_fragment(path: Path) -> str:
    return re.search(r"^# expect: (.*)$", path.read_text(), re.M).group(1)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_invalid_spec_is_rejected_with_its_message(path: Path):
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    lines = caught.value.lines
    fragment = expected_fragment(path)
    assert any(fragment in line for line in lines), lines
    assert all(line.startswith(str(path)) for line in lines)
    assert all("Traceback" not in line and "\n" not in line for line in lines)


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_cli_exits_2_and_writes_nothing(path: Path, tmp_path, capsys):
    assert main(["compile", str(path), "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert expected_fragment(path) in captured.err
    assert "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_line_numbers_point_at_the_offending_key():
    path = Path(__file__).parent / "invalid" / "eps_negative.yaml"
    line = load_spec_error(path)[0]
    number = int(line.split(":")[1].split()[0])
    assert "-0.1" in path.read_text().splitlines()[number - 1]


def load_spec_error(path: Path) -> list[str]:
    try:
        load_spec(path)
    except SpecError as error:
        return error.lines
    raise AssertionError("spec unexpectedly valid")
