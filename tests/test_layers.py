"""The shape of the code, read from its import statements (no module is imported): no import cycle among the
modules of codes/, and no upward import. The layers, lowest first (docs/contributing.md, "Where code belongs"):

1. library modules: everything in codes/ that is not below;
2. the configuration hub: option.py (the flags) and config.py (their resolution);
3. scripts: the commands a user runs (and the metric script and benchmarks, outside codes/).

A module imports only from its own layer or lower ones, and every flag declares its kind where it is declared."""
import ast

from conftest import REPO_ROOT

CODES = REPO_ROOT / "codes"
HUB = {"option", "config"}
SCRIPTS = {"demo_train", "demo_deploy", "export_onnx", "quickstart", "pretrained_zoo", "data_scripts.make_sample",
           "data_scripts.prepare_dataset", "data_scripts.prepare_div2k", "data_scripts.pack_dataset",
           "data_scripts.simulate_pair"}


def module_names():
    names = {}
    for path in CODES.rglob("*.py"):
        parts = path.relative_to(CODES).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


def imported(tree, known):
    """The modules of `known` that a module's import statements name (wherever they stand: lazy imports too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            candidates = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in candidates:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph():
    names = module_names()
    return {name: imported(ast.parse(path.read_text()), names) - {name} for name, path in names.items()}


def layer(name):
    return 3 if name in SCRIPTS else 2 if name in HUB else 1


def test_the_scripts_and_the_hub_are_modules_of_codes():
    assert SCRIPTS | HUB <= set(module_names())


def test_no_module_imports_from_a_higher_layer():
    upward = [f"{a} -> {b}" for a, targets in import_graph().items() for b in targets if layer(b) > layer(a)]
    assert upward == []


def find_cycle(graph):
    """One import cycle of `graph` ({module: modules it imports}) as a list of names, or None."""
    state = {}  # name -> "open" while on the current path, "done" after

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state:
                cycle = visit(target, [*path, target])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [name])
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_checks_see_what_they_look_for():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("import option\nfrom model import spec\n\ndef f():\n    import demo_deploy\n")
    # importing model.spec runs the package's __init__ too: both are dependencies
    assert imported(tree, {"option", "model", "model.spec", "demo_deploy"}) == {"option", "model", "model.spec",
                                                                                 "demo_deploy"}
    assert layer("demo_deploy") > layer("option") > layer("checkpoint")


def test_every_flag_declares_its_kind():
    import option
    from checkpoint import FLAG_KINDS

    actions = list(option.build_parser().flags().values())
    assert actions and all(action.kind in FLAG_KINDS for action in actions)
    kinds = {action.dest: action.kind for action in actions}
    assert kinds["model"] == "network" and kinds["n_feats"] == "architecture" and kinds["tile"] == "runtime"
    assert kinds["data_range"] == "radiometry" and kinds["lr"] == "training"


def test_the_backend_is_chosen_in_one_place():
    """--backend is read by deploy.deploy_model alone; everything else talks to the deploy.DeployBackend it returns."""
    readers = {path.relative_to(CODES).as_posix() for path in CODES.rglob("*.py")
               if "cfg.backend" in path.read_text() and path.name not in ("option.py", "config.py")}
    assert readers == {"deploy.py"}
    source = (CODES / "deploy.py").read_text()
    factory = source[source.index("def deploy_model("):].split("\n\n\n")[0]
    assert source.count("cfg.backend") == factory.count("cfg.backend") == 1
