"""The import direction of docs/architecture.md holds: every runtime import of a siked module
goes to a lower layer (imports under ``TYPE_CHECKING`` are annotations only)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the layers of docs/architecture.md ("Import direction"), bottom first
LAYERS = [
    "errors text registry io stats records rundir console child lock attention machine "
    "engine_names "
    "engines.servers "
    "engines.openvino_weights "
    "_sandbox_worker",
    "manifest resume data models sandbox",
    "verify styles engines engines.base config",
    "strategies authors_prompts",
    "chat gsm8k_rationales",
    "engines.hf engines.openvino engines.openai engines.vllm engines.gold",
    "student",
    "teach train sample evaluate mix",
    "loop report report.load report.metrics report.plots report.markdown report.compare",
    "plan",
    "cli cli._common cli.run cli.plan cli.data cli.check cli.exec cli.teach cli.train "
    "cli.sample cli.mix cli.eval cli.report cli.compare __main__",
]
LAYER = {m: i for i, names in enumerate(LAYERS) for m in names.split()}
#: inside one layer, the order that holds (the report package is split by job)
WITHIN = {
    "report": [
        "report.load",
        "report.metrics",
        "report.plots",
        "report.markdown",
        "report.compare",
    ],
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT / "siked").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "siked"


def runtime_imports(path: Path) -> set[str]:
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and node.module.startswith("siked."):
                base = node.module.removeprefix("siked.")
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif node.module == "siked":
                found.update(a.name for a in node.names)

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_every_module_has_a_layer() -> None:
    modules = {module_name(p) for p in (ROOT / "siked").rglob("*.py")} - {"siked"}
    assert modules == set(LAYER), "update LAYERS here and in docs/architecture.md"


def test_imports_go_down() -> None:
    up = []
    for path in (ROOT / "siked").rglob("*.py"):
        name = module_name(path)
        if name == "siked":
            continue
        for dep in runtime_imports(path):
            if dep not in LAYER or dep == name or name.startswith(f"{dep}."):
                continue  # not a module (a name imported from one), or the package itself
            order = WITHIN.get(name.split(".")[0], [])
            if LAYER[dep] > LAYER[name] or (
                LAYER[dep] == LAYER[name]
                and name in order
                and dep in order
                and order.index(dep) > order.index(name)
            ):
                up.append(f"{name} -> {dep}")
    assert not up, f"imports that go up: {up}"


def test_engines_registry_does_not_import_the_config() -> None:
    """config validates engine names against the registry; the registry never needs config."""
    code = "import sys, siked.engines; print('siked.config' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_config_imports_no_engine() -> None:
    """The engines read the config, so the config must not import the engines package."""
    code = "import sys, siked.config; print(sorted(m for m in sys.modules if 'engines' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def package_graph() -> dict[str, set[str]]:
    """The runtime imports between siked's top-level modules and packages."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "siked").rglob("*.py"):
        name = module_name(path).split(".")[0]
        deps = {d.split(".")[0] for d in runtime_imports(path) if d in LAYER}
        graph.setdefault(name, set()).update(deps - {name, "siked"})
    return graph


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph()
    cycles = [f"{a} <-> {b}" for a in graph for b in graph[a] if a in graph.get(b, set())]
    assert not cycles, cycles
