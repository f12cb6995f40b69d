"""Model safety: ops found by parsing real SavedModels (zoo exports, tf.Module exports that read,
write, call Python or hide ops in branches, loops and resource initializers), the deny list, and
Keras safe mode for .keras files."""

from __future__ import annotations

import os
import sys

import pytest

from patchflow.plugin.engine.errors import PatchFlowError
from patchflow.plugin.engine.models.modelcard import InputSpec
from patchflow.plugin.engine.models.modelsafety import (
    HARMLESS,
    UNSAFE_OPS,
    _attr_functions,
    check_model,
    is_unsafe,
    keras_safe_mode,
    reachable_ops,
    unsafe_ops,
)
from patchflow.plugin.engine.models.zoo import build_model, export_model
from patchflow.plugin.engine.reporting import Reporter

CLASSES = [{"id": i, "name": f"c{i}", "color": "#000000"} for i in (1, 2, 3)]


def save_module(path, body, setup=None, **functions) -> str:
    """A SavedModel whose serving_default maps a float vector x to {"y": body(module, x)};
    ``setup(module)`` adds state, ``functions`` extra saved tf.functions the signature does not call."""
    import tensorflow as tf

    module = tf.Module()
    if setup:
        setup(module)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(x):
        return {"y": body(module, x)}

    module.serve = serve
    for name, function in functions.items():
        setattr(module, name, function)
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return str(path)


def read_hostname(x):
    import tensorflow as tf

    return x + tf.cast(tf.strings.length(tf.io.read_file("/etc/hostname")), tf.float32)


def read_saved_model(path: str):
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as stream:
        saved.ParseFromString(stream.read())
    return saved


def saved_ops(path: str) -> dict[str, set[str]]:
    """{function name: its op types} of every function in the SavedModel's library."""
    library = read_saved_model(path).meta_graphs[0].graph_def.library.function
    return {function.signature.name: {node.op for node in function.node_def} for function in library}


@pytest.fixture(scope="module")
def zoo_model(tmp_path_factory) -> str:
    model, card = build_model("patch_cnn", [InputSpec("x1", 4, 16, "source1")], CLASSES, width=2, seed=0)
    path = str(tmp_path_factory.mktemp("zoo") / "m")
    export_model(model, card, path)
    return path


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> str:
    return save_module(tmp_path_factory.mktemp("read") / "m", lambda m, x: read_hostname(x))


def test_zoo_model_is_safe_although_its_saver_writes_files(zoo_model):
    functions = saved_ops(zoo_model)
    saver = {op for name, ops in functions.items() if "_traced_save" in name or "_traced_restore" in name
             for op in ops}
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= saver
    ops = reachable_ops(zoo_model)
    assert {"Conv2D", "Softmax", "ArgMax", "StatefulPartitionedCall"} <= ops
    assert not ops & {"SaveV2", "RestoreV2", "MergeV2Checkpoints"}
    assert unsafe_ops(zoo_model) == []
    reporter = Reporter()
    check_model(zoo_model, trusted=False, reporter=reporter)
    assert reporter.warnings == []


def test_reading_a_file_is_refused_unless_trusted(reader):
    assert "ReadFile" in reachable_ops(reader)
    assert unsafe_ops(reader) == ["ReadFile"]
    with pytest.raises(PatchFlowError) as caught:
        check_model(reader, trusted=False)
    assert caught.value.parameter == "MODEL"
    assert "ReadFile" in caught.value.message and "TRUST_MODEL" in caught.value.message
    reporter = Reporter()
    check_model(reader, trusted=True, reporter=reporter)
    assert len(reporter.warnings) == 1 and "ReadFile" in reporter.warnings[0]


def test_check_runs_nothing_and_finds_a_file_write(tmp_path):
    import tensorflow as tf

    target = tmp_path / "written.txt"
    path = save_module(tmp_path / "m", lambda m, x: (tf.io.write_file(str(target), "x"), x * 2.0)[1])
    with pytest.raises(PatchFlowError, match="WriteFile"):
        check_model(path, trusted=False)
    assert unsafe_ops(path) == ["WriteFile"]
    assert not target.exists()


@pytest.mark.parametrize("wrapper, op", [("py_function", "EagerPyFunc"), ("numpy_function", "PyFunc")])
def test_python_functions_are_refused(tmp_path, wrapper, op):
    import tensorflow as tf

    call = getattr(tf, wrapper)
    path = save_module(tmp_path / "m", lambda m, x: call(lambda a: a * 2, [x], tf.float32))
    assert op in {node for ops in saved_ops(path).values() for node in ops}
    assert unsafe_ops(path) == [op]
    with pytest.raises(PatchFlowError, match=op):
        check_model(path, trusted=False)


@pytest.mark.parametrize("flow", ["cond", "while"])
def test_ops_hidden_in_branches_and_loops_are_found(tmp_path, flow):
    import tensorflow as tf

    def body(m, x):
        if flow == "cond":
            return tf.cond(tf.reduce_sum(x) > 0, lambda: read_hostname(x), lambda: x)
        return tf.while_loop(lambda i, v: i < 3, lambda i, v: (i + 1, read_hostname(v)), [0, x])[1]

    path = save_module(tmp_path / "m", body)
    functions = saved_ops(path)
    holder = next(name for name, ops in functions.items() if "ReadFile" in ops)
    assert not holder.startswith("__inference_serve")  # in a branch or loop body, not the function itself
    ops = reachable_ops(path)
    assert ("StatelessIf" if flow == "cond" else "StatelessWhile") in ops
    assert unsafe_ops(path) == ["ReadFile"]


def test_load_time_initializers_count_and_uncalled_functions_do_not(tmp_path):
    import tensorflow as tf

    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("a\nb\n")

    def setup(module):
        initializer = tf.lookup.TextFileInitializer(str(vocabulary), tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                                    tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER)
        module.table = tf.lookup.StaticHashTable(initializer, -1)

    @tf.function(input_signature=[])
    def dump():
        tf.io.write_file(str(tmp_path / "dump"), "x")
        return tf.constant(0)

    path = save_module(tmp_path / "m", lambda m, x: x + tf.cast(m.table.lookup(tf.constant("b")), tf.float32),
                       setup, dump=dump)
    assert any("WriteFile" in ops for ops in saved_ops(path).values())
    assert unsafe_ops(path) == ["InitializeTableFromTextFileV2"]  # runs when loading, WriteFile never

    # TensorFlow 2 runs a resource's initializer on loading even without the init ops: still found
    saved = read_saved_model(path)
    del saved.meta_graphs[0].signature_def["__saved_model_init_op"]
    del saved.meta_graphs[0].collection_def["saved_model_main_op"]
    (tmp_path / "m" / "saved_model.pb").write_bytes(saved.SerializeToString())
    assert unsafe_ops(path) == ["InitializeTableFromTextFileV2"]


def test_tf1_graph_runs_what_the_outputs_depend_on(tmp_path):
    """A TF1 SavedModel (Builder): the ops are in the main graph, only the outputs' inputs run;
    a Defun is called by a node whose op is the function's name."""
    import tensorflow as tf
    from tensorflow.python.framework import function

    v1, path = tf.compat.v1, str(tmp_path / "m")
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as session:
        reads = function.Defun(tf.float32, func_name="reads")(read_hostname)
        x = v1.placeholder(tf.float32, [None], name="x")
        y = tf.identity(reads(x), name="y")
        tf.io.write_file(str(tmp_path / "never"), "x", name="dangling")
        builder = v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={
            "serving_default": v1.saved_model.predict_signature_def({"x": x}, {"y": y})})
        builder.save()
    assert {"reads", "WriteFile"} <= {node.op for node in read_saved_model(path).meta_graphs[0].graph_def.node}
    ops = reachable_ops(path)
    assert {"Placeholder", "ReadFile", "StringLength"} <= ops and "reads" not in ops
    assert unsafe_ops(path) == ["ReadFile"]


def test_functions_nested_in_function_attributes_are_followed():
    from tensorflow.core.framework.attr_value_pb2 import AttrValue, NameAttrList

    deep = AttrValue(list=AttrValue.ListValue(func=[NameAttrList(name="deep")]))
    value = AttrValue(func=NameAttrList(name="outer", attr={"inner": deep}))
    assert list(_attr_functions(value)) == ["outer", "deep"]


def test_a_call_naming_an_op_instead_of_a_function_counts(tmp_path, zoo_model):
    """TensorFlow instantiates a function attribute naming a registered op as that op alone."""
    import shutil

    path = str(tmp_path / "m")
    shutil.copytree(zoo_model, path)
    saved = read_saved_model(path)
    call = next(node for node in saved.meta_graphs[0].graph_def.node if node.name == "StatefulPartitionedCall")
    call.attr["f"].func.name = "WriteFile"
    (tmp_path / "m" / "saved_model.pb").write_bytes(saved.SerializeToString())
    assert unsafe_ops(path) == ["WriteFile"]


@pytest.mark.parametrize("stream, found", [("stderr", []), ("file://{}", ["PrintV2 (to a file)"])])
def test_printing_counts_only_into_a_file(tmp_path, stream, found):
    import tensorflow as tf

    stream = sys.stderr if stream == "stderr" else stream.format(tmp_path / "log.txt")
    path = save_module(tmp_path / "m", lambda m, x: (tf.print(x, output_stream=stream), x + 1.0)[1])
    assert "PrintV2" in reachable_ops(path)
    assert unsafe_ops(path) == found


def test_missing_signature_and_broken_graph(tmp_path, zoo_model):
    with pytest.raises(PatchFlowError, match="no 'other' signature.*serving_default"):
        reachable_ops(zoo_model, "other")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(PatchFlowError, match="cannot be read as a SavedModel") as caught:
        check_model(str(broken), trusted=False, parameter="MODEL_DIR")
    assert caught.value.parameter == "MODEL_DIR"


def test_deny_list_names_registered_ops():
    from tensorflow.python.framework import op_def_registry

    assert [op for op in sorted(UNSAFE_OPS | HARMLESS) if op_def_registry.get(op) is None] == []
    assert {"ReadFile", "WriteFile", "SaveV2", "RestoreV2", "PyFunc", "EagerPyFunc", "TFRecordDataset",
            "CreateSummaryFileWriter", "RemoteCall"} <= UNSAFE_OPS
    assert all(is_unsafe(op) for op in ("RpcCall", "GcsConfigureCredentials", "BigQueryReader", "MyFileSink"))
    assert not any(is_unsafe(op) for op in ("Conv2D", "ShardedFilename", "StatefulPartitionedCall", "PrintV2"))


def test_keras_lambda_needs_trust_and_zoo_keras_passes(tmp_path, zoo_model):
    import keras

    inputs = keras.Input((None, None, 3), name="image")
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = str(tmp_path / "lambda.keras")
    keras.Model(inputs, outputs).save(path)
    assert unsafe_ops(path) == []
    with pytest.raises(PatchFlowError) as caught:
        check_model(path, trusted=False)
    assert caught.value.parameter == "MODEL"
    assert "Lambda" in caught.value.message and "TRUST_MODEL" in caught.value.message
    reporter = Reporter()
    check_model(path, trusted=True, reporter=reporter)
    assert len(reporter.warnings) == 1 and "safe mode off" in reporter.warnings[0]
    assert keras_safe_mode(True) is False and keras_safe_mode(False) is True
    loaded = keras.models.load_model(path, compile=False, safe_mode=keras_safe_mode(True))
    assert loaded.layers[-1].__class__.__name__ == "Lambda"

    check_model(os.path.join(zoo_model, "model.keras"), trusted=False)
