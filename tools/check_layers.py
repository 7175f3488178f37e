"""Check that flygnn's imports point down its layers and form no cycle (an AST scan; imports
nothing from flygnn).

Layers, lowest first (a module may import its own layer and the ones below):

0. core: the graph, its parameters, neuron models, integrators, simulation;
1. io: files in and out (checkpoints, pretrained models, JSON configuration machinery);
2. stimuli: stimulus sets and the training movies (they use the core and io only);
3. train: the task, decoder layers, configuration, building and training;
4. analysis: responses, tuning, circuits, ensembles;
5. apps: plotting, cli, demo, distributed, the report, and the package ``flygnn`` itself.

Every ``import`` counts, at top level or inside a function. Calls to
``importlib.import_module`` / ``__import__`` of a flygnn module are errors, except in the
package ``__init__``, whose PEP 562 loader imports a public name's module on first access (import it
plainly; tests patch module attributes). The module graph (without the edges out of
package ``__init__`` files, which only re-export) must have no cycle.

Usage::

    python tools/check_layers.py [--root PATH]   # exit status 1 and a list on violations
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

LAYERS = ["core", "io", "stimuli", "train", "analysis", "apps"]

#: module (or package prefix) -> layer; the longest matching prefix wins
MODULE_LAYERS = {
    "flygnn": "apps",  # the package __init__ re-exports everything
    "flygnn._paths": "core",
    "flygnn.diskcache": "core",
    "flygnn._arguments": "core",
    "flygnn._checks": "core",
    "flygnn._deprecation": "core",
    "flygnn.hexgrid": "core",
    "flygnn.connectome": "core",
    "flygnn.datasets": "core",
    "flygnn.tables": "core",
    "flygnn.tablegraph": "core",
    "flygnn.tableio": "core",
    "flygnn.flat": "core",
    "flygnn.graph": "core",
    "flygnn.params": "core",
    "flygnn.sparse": "core",
    "flygnn.linsolve": "core",
    "flygnn.stability": "core",
    "flygnn.context": "core",
    "flygnn.synapses": "core",
    "flygnn.neurons": "core",
    "flygnn.spiking": "core",
    "flygnn.integrators": "core",
    "flygnn.dynamics": "core",
    "flygnn.network": "core",
    "flygnn.simulate": "core",
    "flygnn.threads": "core",
    "flygnn.fused": "core",
    "flygnn.bptt": "core",
    "flygnn.stacked": "core",
    "flygnn.checkpoint": "core",  # safe, atomic file reads and writes (no flygnn imports)
    # a trained model is a network, a decoder and its TrainConfig; an ensemble of them is an
    # analysis object: loading them sits above train
    "flygnn.pretrained": "analysis",
    "flygnn.transforms": "io",
    "flygnn.moviefile": "io",
    "flygnn.rewiring": "io",
    "flygnn._transform_checks": "io",
    "flygnn.optic_lobe": "io",
    "flygnn.configio": "io",
    "flygnn.stimuli": "stimuli",
    "flygnn.layers": "train",
    "flygnn.task": "train",
    "flygnn.config": "train",
    "flygnn.optimconfig": "train",
    "flygnn.build": "train",
    "flygnn.train": "train",
    "flygnn.rundir": "train",
    "flygnn.constraints": "train",
    "flygnn.stepguard": "train",
    "flygnn.recipes": "train",
    "flygnn.analysis": "analysis",
    "flygnn.analysis.report": "apps",
    "flygnn.analysis.score_report": "apps",  # flygnn score: writes tables and figures
    "flygnn.plotting": "apps",
    "flygnn.cli": "apps",
    "flygnn.cli_common": "apps",
    "flygnn.cli_models": "apps",
    "flygnn.cli_train": "apps",
    "flygnn.demo": "apps",
    "flygnn.distributed": "apps",
}

#: temporary, known upward imports (importer, imported), each with the reason; remove an
#: entry once the import is gone (a stale entry is reported too)
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer of ``module``: the longest matching entry of :data:`MODULE_LAYERS` (the
    package ``flygnn`` itself matches only its ``__init__``, so a new top-level module must be
    placed in a layer here).

    Raises:
        KeyError: a module no entry covers.
    """
    best = max((p for p in MODULE_LAYERS
                if module == p or (p != "flygnn" and module.startswith(p + "."))),
               key=len, default=None)
    if best is None:
        raise KeyError(f"{module}: not in MODULE_LAYERS of tools/check_layers.py; "
                       "place the new module in a layer")
    return MODULE_LAYERS[best]


def imports_of(tree: ast.AST, module: str, is_package: bool, modules: set[str]):
    """``(imported module, line)`` of every flygnn import, and dynamic imports as errors."""
    found, dynamic = [], []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "flygnn"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "flygnn":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in modules else base, node.lineno))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                literal = arg.value if isinstance(arg, ast.Constant) else None
                if not isinstance(literal, str) or literal.split(".")[0] == "flygnn":
                    dynamic.append((name, node.lineno))
    return found, dynamic


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def check(root: Path) -> list[str]:
    """All violations in the package at ``root`` (the ``flygnn`` folder)."""
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    errors, graph, used = [], {}, set()
    for module, path in files.items():
        try:
            mine = layer_of(module)
        except KeyError:
            errors.append(f"{path}: module {module} has no layer in tools/check_layers.py")
            continue
        found, dynamic = imports_of(ast.parse(path.read_text()), module,
                                    path.name == "__init__.py", modules)
        if module != "flygnn":  # the package's lazy loader (PEP 562) re-exports only
            errors += [f"{path}:{line}: dynamic import ({name}) of a flygnn module; import it "
                       "plainly" for name, line in dynamic]
        for target, line in found:
            if target == module:
                continue
            if path.name != "__init__.py" and (module, target) not in KNOWN_EXCEPTIONS:
                graph.setdefault(module, set()).add(target)
            theirs = layer_of(target) if target in modules or target == "flygnn" else None
            if theirs is None:
                errors.append(f"{path}:{line}: imports {target}, which does not exist")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                if (module, target) in KNOWN_EXCEPTIONS:
                    used.add((module, target))
                    continue
                errors.append(f"{path}:{line}: {module} ({mine}) imports {target} ({theirs}), "
                              "a higher layer")
    cycle = find_cycle(graph)  # known exceptions are not edges here
    if cycle:
        errors.append("import cycle: " + " -> ".join(cycle))
    errors += [f"tools/check_layers.py: known exception {pair} no longer occurs; remove it"
               for pair in sorted(set(KNOWN_EXCEPTIONS) - used)]
    return errors


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path,
                        default=Path(__file__).resolve().parents[1] / "flygnn")
    args = parser.parse_args(argv)
    errors = check(args.root)
    for error in errors:
        print(error)
    if not errors:
        print(f"layers ok: {len(list(args.root.rglob('*.py')))} modules, no upward import, "
              f"no cycle ({len(KNOWN_EXCEPTIONS)} known exceptions)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
