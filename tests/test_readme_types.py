"""TYPE CHECK: the README's Python examples pass mypy against rivetgreen's own annotations, as in a user's project.

Each ``.. code-block:: python`` of README.rst becomes a module (the names an example takes from the text around it,
such as ``counter``, are defined first), and one mypy run checks them all with the project's ``[tool.mypy]``
settings (strict), except that the examples may leave their own functions unannotated. A deliberately wrong module
in the same run shows that mypy really reads rivetgreen's types (with no ``py.typed`` it would see only ``Any``).
"""

import ast
import builtins
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rivetgreen

PROJECT = Path(__file__).resolve().parent.parent

# Names the examples use without defining them: the README's running example actors and earlier imports.
SUPPORTING_DEFINITIONS = {
    "actor": "from rivetgreen import actor",
    "setup": "from rivetgreen import setup",
    "counter": 'counter = actor("counter", state={"count": 0})',
    "chat_room": 'chat_room = actor("chat_room")',
    "echo": 'echo = actor("echo")',
}

# Misuses mypy must report, by the line it reports each on (a decorator's misuse: the decorator's line).
MISUSE = '''\
from rivetgreen import ActorContext, actor, setup

counter = actor("counter")

@counter.on_wake
def on_wake(c: ActorContext, extra: int) -> None: ...

@counter.action
def without_context() -> int: return 1

counter.on_wakee(print)
handle = setup(counter).get_or_create("counter", ["a"])
handle.connect().on(1, print)
'''
MISUSE_ERRORS = {
    5: 'Value of type variable "ContextHook" of "on_wake"',
    8: 'Value of type variable "ActionFunction" of "action"',
    11: '"ActorDefinition" has no attribute "on_wakee"',
    13: 'Argument 1 to "on" of "LocalConnection" has incompatible type "int"',
}


def readme_python_blocks() -> list[str]:
    text = (PROJECT / "README.rst").read_text(encoding="utf-8")
    # A block may itself be indented (inside a definition list); its code is indented further.
    blocks = re.findall(r"^([ \t]*)\.\. code-block:: python\n\n((?:\1[ \t]+.*\n|\n)+)", text, flags=re.MULTILINE)
    return [textwrap.dedent(code) for _, code in blocks]


def with_supporting_definitions(block: str) -> str:
    """The block, preceded by the supporting definitions of the names it uses but does not bind itself."""
    tree = ast.parse(block)
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    missing = used - bound - set(dir(builtins))
    if "counter" in missing or "chat_room" in missing or "echo" in missing:
        missing.add("actor")
    lines = [line for name, line in SUPPORTING_DEFINITIONS.items() if name in missing]
    return "\n".join([*lines, block])


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """mypy's error lines by module file name, for every README block and the misuse module."""
    directory = tmp_path_factory.mktemp("readme_types")
    names = []
    for number, block in enumerate(readme_python_blocks(), start=1):
        path = directory / f"readme_block_{number}.py"
        path.write_text(with_supporting_definitions(block), encoding="utf-8")
        names.append(path.name)
    (directory / "misuse.py").write_text(MISUSE, encoding="utf-8")
    names.append("misuse.py")
    # mypy finds the rivetgreen this test imported as an installed package, which it reads only with py.typed.
    package_root = str(Path(rivetgreen.__file__).resolve().parent.parent)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(PROJECT / "pyproject.toml"), "--allow-untyped-defs",
         "--cache-dir", str(directory / "cache"), "--no-error-summary", *(str(directory / name) for name in names)],
        cwd=directory, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert result.stderr == "", result.stderr
    report: dict[str, list[str]] = {name: [] for name in names}
    for line in result.stdout.splitlines():
        file_name = Path(line.split(":", 1)[0]).name
        if ": error:" in line:
            report.setdefault(file_name, []).append(line)
    return report


def test_readme_has_the_examples_this_checks():
    blocks = readme_python_blocks()
    assert len(blocks) >= 6
    assert any("@counter.on_wake" in block and "handle.increment(5)" in block for block in blocks)
    assert any("def post(c: ActorContext, text: str) -> int:" in block for block in blocks)


def test_readme_python_examples_type_check(mypy_report):
    readme_errors = [line for name, lines in mypy_report.items() if name.startswith("readme_") for line in lines]
    assert readme_errors == []
    assert set(mypy_report) - {"misuse.py"} == {f"readme_block_{n}.py" for n in range(1, len(mypy_report))}


def test_misused_api_is_reported(mypy_report):
    """If mypy could not see rivetgreen's types (no py.typed, untyped decorators), none of this would be reported."""
    errors = mypy_report["misuse.py"]
    for line_number, message in MISUSE_ERRORS.items():
        assert any(f"misuse.py:{line_number}: error: {message}" in line for line in errors), errors
    assert len(errors) == len(MISUSE_ERRORS), errors
