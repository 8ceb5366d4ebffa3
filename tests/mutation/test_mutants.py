"""The mutation check's own consistency (fast; the check itself runs in CI).

Every mutant still applies to the current code (its old text occurs exactly
once and the mutated module still compiles), names tests that exist, changes
only a temporary copy, and is listed in docs/testing.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from tests.mutation import __main__, mutants
from tests.mutation._runner import MutantError, Outcome, make_copy, mutate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=[m.name for m in mutants.MUTANTS])
def test_mutant_applies_to_the_current_code(mutant: mutants.Mutant) -> None:
    source = (ROOT / mutant.path).read_text()
    mutated = mutate(source, mutant)
    assert mutated != source
    compile(mutated, mutant.path, "exec")  # a semantic slip, not a syntax error
    assert mutant.path in mutants.PROPERTY_TESTS


def test_at_least_fifteen_distinct_mutants() -> None:
    names = [m.name for m in mutants.MUTANTS]
    assert len(names) >= 15
    assert len(set(names)) == len(names)
    assert len({(m.path, m.old) for m in mutants.MUTANTS}) == len(names)


def test_mutate_refuses_text_that_is_not_there_once() -> None:
    mutant = mutants.Mutant("x", "f.py", "a = 1", "a = 2", "")
    with pytest.raises(MutantError, match="found it 0 times"):
        mutate("b = 1", mutant)
    with pytest.raises(MutantError, match="found it 2 times"):
        mutate("a = 1\na = 1\n", mutant)


def test_property_tests_exist() -> None:
    for node in {node for nodes in mutants.PROPERTY_TESTS.values() for node in nodes}:
        path, name = node.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE), node
    notebook_test, _ = mutants.NOTEBOOK_03.split("[")
    path, name = notebook_test.split("::")
    assert f"def {name}(" in (ROOT / path).read_text()
    assert (ROOT / "notebooks" / "03_gradients.ipynb").exists()


def test_a_mutant_changes_only_its_copy(tmp_path: Path) -> None:
    mutant = mutants.MUTANTS[0]
    original = ROOT / mutant.path
    before = hashlib.sha256(original.read_bytes()).hexdigest()
    make_copy(ROOT, tmp_path, mutant)
    assert hashlib.sha256(original.read_bytes()).hexdigest() == before
    copied = (tmp_path / mutant.path).read_text()
    assert mutant.new in copied
    assert mutant.old not in copied


def test_docs_list_every_mutant_and_ci_runs_the_check() -> None:
    docs = (ROOT / "docs" / "testing.md").read_text()
    missing = [m.name for m in mutants.MUTANTS if f"`{m.name}`" not in docs]
    assert missing == [], "docs/testing.md must list every mutant"
    assert "python -m tests.mutation" in (ROOT / ".ci" / "run").read_text()


def test_file_selects_the_mutants_of_a_module_and_refuses_an_unmutated_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert __main__.main(["--file", "jaxcnn/nope.py", "--no-baseline", "--no-notebook"]) == 2
    assert "no mutant changes ['jaxcnn/nope.py']" in capsys.readouterr().err
    model = [m for m in mutants.MUTANTS if m.path == "jaxcnn/manual/_model.py"]
    assert len(model) >= 10
    assert set(mutants.tests_for(model[0])) == set(mutants.MODEL)


def test_the_json_record_names_the_command_that_made_it(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    outcome = Outcome("m", "caught", 1.5, "tests/x.py::test_y", 1, "")
    __main__.write_json(path, [outcome], 2.0, 2, ["--file", "jaxcnn/manual/_vjp.py"])
    record = json.loads(path.read_text())
    assert record["command"] == "python -m tests.mutation --file jaxcnn/manual/_vjp.py"
    assert record["results"] == [
        {"name": "m", "verdict": "caught", "caught_by": "tests/x.py::test_y", "seconds": 1.5}
    ]
