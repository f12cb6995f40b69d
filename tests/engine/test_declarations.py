"""The declarations (plugin/declarations.py) are the one source of every parameter: the engine's
``params.<kind>("NAME")`` calls name declared parameters of their operation, with the declared kind,
and repeat none of their defaults, bounds or choices; ``Params`` applies them."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from patchflow.plugin.declarations import ENGINE_KINDS, OPERATIONS, Operation, Param
from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.params import Params

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "plugin" / "engine"
# the operations each engine module reads the parameters of
MODULE_OPERATIONS = {
    "evaluate.assess": ("assess_accuracy",), "evaluate.compare": ("compare_accuracy",),
    "classify.deepfeatures": ("classify",), "classify.trainclassifier": ("train_classifier",),
    "classify.multisource": ("classify",),
    "data.manifest": ("describe_patches",), "data.extraction": ("extract_patches",),
    "data.polygonlabels": ("extract_patches",),
    "evaluate.quality": ("assess_image_quality",), "data.sampling": ("sample_label_raster", "sample_vector"),
    "serve.serving": ("apply_model",), "data.split": ("grid_split",), "data.srdata": ("build_sr_dataset",),
    "serve.binding": ("apply_model",), "serve.geometry": ("apply_model",), "serve.plan": ("apply_model",),
    "serve.outputs": ("apply_model",), "serve.clipping": ("apply_model",),
    "scale.execution": ("apply_model", "classify", "extract_patches"), "scale.dispatch": ("apply_model",),
    "scale.tasks": ("apply_model",), "scale.classifying": ("classify",), "scale.extracting": ("extract_patches",),
    "train.training": ("train_model",), "train.trainsettings": ("train_model",), "train.trainsetup": ("train_model",),
    "models.zoo": ("create_model",), "checks.trainingchecks": ("train_model",), "train.repeats": ("train_model",),
    "experiment.comparesr": ("compare_sr",),
    "preflight": ("apply_model", "train_model", "extract_patches", "train_classifier", "classify"),
}


def module_file(module: str) -> Path:
    """plugin/engine/data/sampling.py for "data.sampling"."""
    return ENGINE.joinpath(*module.split(".")).with_suffix(".py")
ACCESSORS = ("string", "integer", "number", "nodata", "boolean", "choice", "paths")


def is_params_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ACCESSORS
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "params" and bool(node.args))


def params_calls(path: Path) -> list[tuple[int, str, ast.expr, ast.Call]]:
    """(line, accessor, name expression, call) of every ``params.<accessor>(...)`` in ``path``."""
    return [(node.lineno, node.func.attr, node.args[0], node)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if is_params_call(node)]


def operations_by_line(module: str, operations: tuple[str, ...]) -> dict[int, tuple[str, ...]]:
    """For a module of several operations, the operations each call serves: those whose run_<op>
    reaches the function holding it (through the module's own functions); all of them otherwise."""
    from patchflow.plugin.engine.operations import OPERATIONS as ENGINE_OPERATIONS

    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    callees = {name: {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                      and n.func.id in functions} for name, node in functions.items()}
    served: dict[str, set[str]] = {}
    for op in operations:
        stack = [ENGINE_OPERATIONS[op].__name__]
        while stack:
            name = stack.pop()
            if op not in served.setdefault(name, set()):
                served[name].add(op)
                stack.extend(callees.get(name, ()))
    lines = {}
    for name, node in functions.items():
        for call in ast.walk(node):
            if is_params_call(call) and served.get(name):
                lines[call.lineno] = tuple(sorted(served[name]))
    return lines


def name_pattern(expression: ast.expr) -> re.Pattern | None:
    """The parameter names a call can read: a literal, or an f-string such as f"SOURCE{index}"."""
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return re.compile(re.escape(expression.value))
    if isinstance(expression, ast.JoinedStr):
        return re.compile("".join(re.escape(part.value) if isinstance(part, ast.Constant) else r"\d+"
                                  for part in expression.values))
    return None  # a variable: the names it takes are checked where they are listed (e.g. OUTPUTS)


def engine_calls():
    for module, operations in MODULE_OPERATIONS.items():
        served = operations_by_line(module, operations) if 1 < len(operations) < len(OPERATIONS) else {}
        for line, accessor, expression, call in params_calls(module_file(module)):
            yield module, served.get(line, operations), line, accessor, expression, call


def test_the_scan_finds_the_engine_calls():
    calls = list(engine_calls())
    assert len(calls) > 80
    assert {module for module, *_ in calls} == set(MODULE_OPERATIONS)
    readers = {".".join(p.relative_to(ENGINE).with_suffix("").parts) for p in ENGINE.rglob("*.py") if params_calls(p)}
    assert readers <= set(MODULE_OPERATIONS), f"map {readers - set(MODULE_OPERATIONS)} to their operations"


@pytest.mark.parametrize("module", sorted(MODULE_OPERATIONS))
def test_every_engine_call_names_a_declared_parameter_of_its_kind(module):
    wrong = []
    for _, operations, line, accessor, expression, _ in (c for c in engine_calls() if c[0] == module):
        pattern = name_pattern(expression)
        if pattern is None:
            continue
        declared = [p for op in operations for p in OPERATIONS[op].parameters if pattern.fullmatch(p.name)]
        if not declared:
            wrong.append(f"{module}.py:{line}: params.{accessor}({pattern.pattern}) is not declared in {operations}")
        for param in declared:
            kinds = ENGINE_KINDS[param.kind] + (("choice",) if param.kind == "boolean" and param.choices else ())
            if accessor not in kinds and (not module.startswith("checks.") or not any(
                    accessor in ENGINE_KINDS[p.kind] for p in declared if p.name == param.name)):
                wrong.append(f"{module}.py:{line}: params.{accessor}({param.name}) but {param.name} is declared "
                             f"'{param.kind}' (read with {', '.join(kinds)})")
    assert not wrong, "\n".join(wrong)


def test_engine_calls_repeat_no_default_bound_or_choices():
    """A literal default, a minimum/maximum or a choice list in a call would drift from the declaration;
    a default computed from another parameter (STEP: the patch size) or None (not required here) may be given."""
    repeated = []
    for module, _, line, accessor, _, call in engine_calls():
        given = call.args[1:] if accessor != "paths" else []
        literal = [a for a in given if not (isinstance(a, ast.Constant) and a.value is None)
                   and isinstance(a, (ast.Constant, ast.Tuple, ast.List))]
        if accessor == "choice" and given:
            literal = given
        bounds = [k.arg for k in call.keywords if k.arg in ("minimum", "maximum", "default")]
        if literal or bounds:
            repeated.append(f"{module}.py:{line}: params.{accessor}({ast.unparse(call.args[0])}, ...) repeats "
                            f"{', '.join(bounds) or ast.unparse(literal[0])}")
    assert not repeated, "\n".join(repeated)


def test_declarations_are_consistent():
    from patchflow.plugin.engine.operations import OPERATIONS as ENGINE_OPERATIONS

    assert set(OPERATIONS) == set(ENGINE_OPERATIONS)
    for op in OPERATIONS.values():
        names = [p.name for p in op.parameters]
        assert len(set(names)) == len(names), op.name
        assert len(set(op.results)) == len(op.results), op.name
        for param in op.parameters:
            assert param.kind in ENGINE_KINDS, (op.name, param.name)
            if param.parent:
                assert param.parent in names and names.index(param.parent) < names.index(param.name), param.name
            if param.kind == "enum":
                assert param.choices and param.engine_default in param.values, (op.name, param.name)
                assert len(set(param.values)) == len(param.values), (op.name, param.name)
            if param.kind == "boolean":
                assert isinstance(param.default, bool) and len(param.choices) in (0, 2), (op.name, param.name)
            if param.kind in ("rasters", "files", "vector", "vector_destination"):
                assert param.layers, (op.name, param.name)
            if param.default is not None and param.minimum is not None:
                assert param.default >= param.minimum, (op.name, param.name)
        assert {o.kind for o in op.outputs} <= {"number", "string", "file", "folder", "html"}


def test_engine_choice_lists_are_the_declared_ones():
    from patchflow.plugin.engine.classify import deepfeatures
    from patchflow.plugin.engine.data import sampling, split
    from patchflow.plugin.engine.models import zoo
    from patchflow.plugin.engine.serve import plan
    from patchflow.plugin.engine.train import trainsettings

    def values(operation: str, name: str) -> tuple[str, ...]:
        return OPERATIONS[operation].parameter(name).values

    assert values("apply_model", "MODE") == plan.MODES
    assert values("sample_label_raster", "STRATEGY") == values("sample_vector", "STRATEGY") == sampling.STRATEGIES
    assert values("grid_split", "STRATEGY") == split.STRATEGIES
    assert values("train_model", "OPTIMIZER") == trainsettings.OPTIMIZERS
    assert values("train_model", "LOSS") == trainsettings.LOSSES
    assert values("train_model", "DEVICE") == trainsettings.DEVICES
    assert values("train_model", "CLASS_WEIGHTS") == trainsettings.CLASS_WEIGHTS
    assert values("train_classifier", "CLASSIFIER") == deepfeatures.CLASSIFIERS
    assert values("create_model", "ARCHITECTURE") == values("train_model", "ARCHITECTURE") == tuple(zoo.ARCHITECTURES)


# ---- Params applies the declaration -----------------------------------------------------------------

DECLARED = Operation("op", (
    Param("SIZE", "integer", "Size", 8, minimum=1, maximum=64),
    Param("RATIO", "number", "Ratio", 0.5, minimum=0.0, maximum=1.0),
    Param("STEP", "integer", "Step", optional=True, minimum=1),
    Param("COUNT", "integer", "Count"),
    Param("MODE", "enum", "Mode", "b", choices=(("a", "A"), ("b", "B"))),
    Param("BALANCE", "boolean", "Balance", True, choices=(("none", "No"), ("auto", "Yes"))),
    Param("FLAG", "boolean", "Flag", True),
    Param("NAME", "string", "Name", "features", optional=True),
))


def declared(**values) -> Params:
    return Params(values, declaration=DECLARED)


def error_of(call) -> PatchFlowError:
    with pytest.raises(PatchFlowError) as caught:
        call()
    return caught.value


def test_params_take_the_declared_defaults():
    params = declared()
    assert (params.integer("SIZE"), params.number("RATIO"), params.integer("STEP")) == (8, 0.5, None)
    assert (params.choice("MODE"), params.choice("BALANCE"), params.boolean("FLAG")) == ("b", "auto", True)
    assert params.string("NAME") == "features"
    assert error_of(lambda: params.integer("COUNT")).parameter == "COUNT"  # declared without default: required
    assert declared().integer("STEP", 5) == 5  # a default computed by the engine wins
    assert error_of(lambda: declared(STEP=None).integer("STEP", required=True)).parameter == "STEP"


def test_params_check_the_declared_bounds_and_choices():
    assert "use 1 or more" in str(error_of(lambda: declared(SIZE=0).integer("SIZE")))
    assert "use 64 or less" in str(error_of(lambda: declared(SIZE=65).integer("SIZE")))
    assert "use 1 or less" in str(error_of(lambda: declared(RATIO=1.5).number("RATIO")))
    assert declared(SIZE=64, RATIO=1.0).integer("SIZE") == 64
    assert error_of(lambda: declared(MODE="c").choice("MODE")).parameter == "MODE"
    assert declared(MODE=0).choice("MODE") == "a"  # an index, as the dialog's enum gives
    assert (declared(BALANCE=False).choice("BALANCE"), declared(BALANCE="none").choice("BALANCE")) == ("none",) * 2
    assert declared(BALANCE=True).choice("BALANCE") == "auto"


def test_the_drift_found_is_gone():
    """The dialog and the engine had different defaults and bounds for these."""
    assert Params({}, declaration=OPERATIONS["apply_model"]).integer("TILE_SIZE") == 0  # the dialog said 512
    for operation in ("sample_vector", "sample_label_raster"):
        assert "use 1 or more" in str(error_of(lambda o=operation: Params(
            {"NUMBER": 0}, declaration=OPERATIONS[o]).integer("NUMBER")))  # the engine took 0
    assert error_of(lambda: Params({"SVM_C": 0}, declaration=OPERATIONS["train_classifier"]).number(
        "SVM_C")).parameter == "SVM_C"
    quality = OPERATIONS["assess_image_quality"]
    for name in ("DATA_RANGE", "SCALE_FOR_ERGAS"):
        assert error_of(lambda n=name: Params({n: -1}, declaration=quality).number(n)).parameter == name
    assert error_of(lambda: Params({"SCALE": 0.5}, declaration=OPERATIONS["build_sr_dataset"]).number(
        "SCALE")).parameter == "SCALE"
    create_model = OPERATIONS["create_model"]
    for name, value, words in (("BANDS", 0, "1 band"), ("N_CLASSES", 1, "2 classes")):  # the engine had no bound
        error = error_of(lambda n=name, v=value: Params({n: v}, declaration=create_model).integer(n))
        assert error.parameter == name and words in str(error)  # the declared bound says why
    sr = OPERATIONS["build_sr_dataset"]  # VALID: the dialog stopped at 0.95, the engine at 1
    assert "nothing for training" in str(error_of(lambda: Params({"VALID": 0.99}, declaration=sr).number("VALID")))
    create = Params({}, declaration=create_model)
    assert (create.choice("ARCHITECTURE"), create.integer("SEED")) == ("patch_cnn", 0)  # were required / None


def test_the_command_line_runs_with_the_declared_defaults(gd, tmp_path):
    """Only INPUT and OUTPUT: STRATEGY constant and NUMBER 100 come from the declaration; NUMBER 0 is refused
    by the declared minimum."""
    labels = np.ones((30, 30), np.uint8)
    labels[:, 15:] = 2
    path = gd.write_raster(tmp_path / "labels.tif", labels, nodata=0)

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = {"PYTHONPATH": str(ROOT / ".cache" / "plugins"), "PATH": "/usr/bin:/bin"}
        return subprocess.run([sys.executable, "-m", "patchflow.plugin.engine", "run", "sample_label_raster",
                               f"INPUT={path}", *args], capture_output=True, text=True, env=env, timeout=120,
                              stdin=subprocess.DEVNULL)

    done = cli(f"OUTPUT={tmp_path / 's.gpkg'}")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["COUNT"] == 200
    refused = cli("NUMBER=0", f"OUTPUT={tmp_path / 'zero.gpkg'}")
    assert refused.returncode != 0 and "NUMBER" in refused.stderr and "1 or more" in refused.stderr
    assert not (tmp_path / "zero.gpkg").exists()
