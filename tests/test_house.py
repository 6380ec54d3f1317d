"""The house rules that lint-imports cannot see: sizes, and a command line that starts
without the client libraries."""

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "lbscrape"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # body, without the docstring
HEAVY = ("boto3", "botocore", "kubernetes", "google.protobuf", "snappy")


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if len(body) > 1 and isinstance(body[0], ast.Expr) \
                        and isinstance(body[0].value, ast.Constant):
                    body = body[1:]
                yield path, node, node.end_lineno - body[0].lineno + 1


def test_no_module_is_over_500_lines():
    sizes = {p.relative_to(PACKAGE.parent): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert len(sizes) > 40
    assert {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_over_60_lines():
    found = list(_functions())
    assert len(found) > 300
    assert [(str(p.relative_to(PACKAGE.parent)), f.name, n) for p, f, n in found
            if n > MAX_FUNCTION_LINES] == []


def test_the_command_line_loads_no_client_library_until_a_command_runs():
    code = ("import sys; from click.testing import CliRunner; from lbscrape.cli import cli; "
            "r = CliRunner().invoke(cli, ['run', '--help']); assert r.exit_code == 0, r.output; "
            f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_every_command_is_a_module_of_its_own():
    from lbscrape.cli import cli

    modules = {cmd.callback.__module__ for cmd in cli.commands.values()}
    assert modules == {f"lbscrape.cli.{name}" for name in cli.commands}


def _imported(root: pathlib.Path) -> set[str]:
    """Top-level names of the modules the .py files under root import."""
    names = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"lbscrape", "tests", "bench", "__future__"}


def test_what_the_tests_import_is_declared():
    """A module the tests import and the package does not comes from the test extra (or
    the package's dependencies), not from whatever another package happens to pull in:
    jsonschema came with kubernetes-validate until it was declared."""
    import importlib.metadata
    import re
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in
                (*project["dependencies"], *project["optional-dependencies"]["test"])}
    dists = importlib.metadata.packages_distributions()
    root = PACKAGE.parent
    only_tests = (_imported(root / "tests") | _imported(root / "bench")) - _imported(PACKAGE)
    undeclared = {m for m in only_tests
                  if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared}
    assert undeclared == set()
