"""Model safety: refuse models that would touch files, the network or the Python interpreter
when served, unless the user ticks TRUST_MODEL ("I trust this model").

* A SavedModel is checked without loading it: ``saved_model.pb`` is parsed with the protobuf
  classes, and every op that serving can run is listed: the graph nodes the serving signature's
  outputs depend on, every function they call (``f``, ``then_branch``/``else_branch``, ``cond``/
  ``body``, ``branches``, any function-valued attribute, nested ones too), and what loading runs
  (the ``__saved_model_init_op``, TF1 main/legacy init ops, resource creators, initializers and
  destroyers, restore functions of saveable objects); a function attribute naming an op rather than a
  library function counts as that op. The saver's own ``__inference__traced_save``/
  ``_traced_restore`` functions (SaveV2, RestoreV2) are not reachable from there, so they do not count.
* A ``.keras`` file is checked without Keras: its ``config.json`` is read from the zip archive and
  every object it describes must be Keras's own (module ``keras``/``keras.*``; no ``Lambda``,
  ``TFSMLayer`` or ``TorchModuleWrapper``, no ``__lambda__`` code, no vocabulary file) or one PatchFlow
  registers (package ``patchflow``, ``PATCHFLOW_OBJECTS``; its ``SignatureLayer`` only when the
  SavedModel it calls passes the SavedModel check). A file that is not such an archive is "not a
  valid .keras file". It is then loaded with Keras safe mode on; a trusted one with safe mode off
  (``keras_safe_mode``).
* ``open_model`` is the one gate every operation loads a network through (train, apply, deep
  features, classify, super-resolution, resuming a training checkpoint): the check, then the load.

The deny list (``UNSAFE_OPS``) is conservative, checked against TensorFlow's op registry: file reading and
writing (checkpoints, readers, file-backed datasets and lookup tables, summary and debug writers),
the Python interpreter (``PyFunc``), remote execution and tf.data services. Op names containing
``UNSAFE_PATTERNS`` (File, PyFunc, Rpc, Gcs, BigQuery, Bigtable) are refused too, whatever their
library, except two string-formatting ops of the saver (``HARMLESS``). ``PrintV2`` counts only when
it prints to a ``file://`` stream, ``FixedUnigramCandidateSampler`` only when it reads a vocabulary file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ...declarations import trust
from ..errors import PatchFlowError
from .modelio import EXPECTED, SIGNATURE, TRAINING_MODEL, model_kind

if TYPE_CHECKING:
    from tensorflow.core.framework.attr_value_pb2 import AttrValue
    from tensorflow.core.framework.node_def_pb2 import NodeDef
    from tensorflow.core.protobuf.meta_graph_pb2 import MetaGraphDef

    from ..reporting import Reporter

TRUST_LABEL = trust().label  # the TRUST_MODEL checkbox, as the dialog shows it
TRUST = f'tick TRUST_MODEL ("{TRUST_LABEL}") only if the model comes from a source you trust'
REFUSED = f"Use a model that does not, or {TRUST}."

_FILE_IO = {
    "ReadFile", "WriteFile", "MatchingFiles", "FileSystemSetConfiguration",
    # checkpoints
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints",
    "LoadAndRemapMatrix", "DTensorRestoreV2", "CalibrationStatisticsSaver", "DumpTensor",
    # readers (TF1 queues)
    "WholeFileReader", "WholeFileReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TextLineReader", "TextLineReaderV2", "IdentityReader", "IdentityReaderV2",
    "LMDBReader", "RecordInput",
    # datasets reading or writing files
    "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2",
    "TextLineDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
    "ExperimentalLMDBDataset", "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "SqlDataset",
    "ExperimentalSqlDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2", "SnapshotDataset", "SnapshotDatasetV2",
    "SnapshotDatasetReader", "SnapshotNestedDatasetReader", "SnapshotChunkDataset", "ListSnapshotChunksDataset",
    "DistributedSave",
    # lookup tables, vocabularies and samplers read from a file
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "GenerateVocabRemapping", "Skipgram",
    # summary writers
    "SummaryWriter", "CreateSummaryFileWriter", "CreateSummaryDbWriter", "FlushSummaryWriter",
    "CloseSummaryWriter", "ImportEvent", "WriteSummary", "WriteRawProtoSummary", "WriteScalarSummary",
    "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
    "StatsAggregatorSetSummaryWriter",
    # debugger ops write to file:// or grpc:// URLs
    "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
    "DebugNumericSummaryV2",
}
_INTERPRETER = {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
_REMOTE = {
    "RemoteCall", "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2",
}
UNSAFE_OPS: frozenset[str] = frozenset(_FILE_IO | _INTERPRETER | _REMOTE)
UNSAFE_PATTERNS = ("File", "PyFunc", "Rpc", "Gcs", "BigQuery", "Bigtable")
HARMLESS: frozenset[str] = frozenset({"ShardedFilename", "ShardedFilespec"})  # string formatting only
# ops unsafe only with some attribute values: op -> (attribute, prefix of an unsafe value, what it does)
_UNSAFE_WITH = {
    "PrintV2": ("output_stream", "file://", "to a file"),
    "FixedUnigramCandidateSampler": ("vocab_file", "", "reading a file"),
}

INIT_SIGNATURE = "__saved_model_init_op"
_INIT_COLLECTIONS = ("saved_model_main_op", "legacy_init_op", "table_initializer")
_LOAD_TIME_CHILDREN = ("_create_resource", "_initialize", "_destroy_resource")


# ---- reading the graph ---------------------------------------------------------------------------


def _meta_graphs(saved_model_dir: str, parameter: str) -> list[MetaGraphDef]:
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    path = os.path.join(saved_model_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    try:
        with open(path, "rb") as stream:
            saved_model.ParseFromString(stream.read())
    except (OSError, DecodeError) as exc:
        raise PatchFlowError(f"{path} cannot be read as a SavedModel ({type(exc).__name__}). Expected {EXPECTED}.",
                             parameter) from None
    return list(saved_model.meta_graphs)


def _node_name(tensor: str) -> str:
    """The node of a tensor or control input name: "^a", "a:1" and "a" all name node "a"."""
    return tensor.lstrip("^").split(":")[0]


def _attr_functions(value: AttrValue) -> Iterator[str]:
    """Names of the functions an attribute value holds, those in its own attributes included."""
    functions = list(value.list.func) + ([value.func] if value.HasField("func") else [])
    for function in functions:
        yield function.name
        for inner in function.attr.values():
            yield from _attr_functions(inner)


def _calls(node: NodeDef, library: dict) -> Iterator[str]:
    """The functions a node runs: its function-valued attributes, or the node itself when its op
    names a library function (a direct call)."""
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        yield from _attr_functions(value)


def _load_time_functions(meta_graph: MetaGraphDef) -> Iterator[str]:
    """Functions that TensorFlow 2 runs when loading: resource lifecycles, saveable restorers."""
    objects = meta_graph.object_graph_def.nodes

    def concrete(index: int) -> list[str]:
        target = objects[index]
        kind = target.WhichOneof("kind")
        if kind == "function":
            return list(target.function.concrete_functions)
        if kind == "bare_concrete_function":
            return [target.bare_concrete_function.concrete_function_name]
        return []

    for saved in objects:
        for child in saved.children:
            if child.local_name in _LOAD_TIME_CHILDREN and child.node_id < len(objects):
                yield from concrete(child.node_id)
        for saveable in saved.saveable_objects.values():
            if saveable.restore_function < len(objects):
                yield from concrete(saveable.restore_function)


def _root_nodes(meta_graph: MetaGraphDef, signature: str) -> list[str]:
    names = [tensor.name for tensor in meta_graph.signature_def[signature].outputs.values()]
    if INIT_SIGNATURE in meta_graph.signature_def:
        names += [tensor.name for tensor in meta_graph.signature_def[INIT_SIGNATURE].outputs.values()]
    for key in _INIT_COLLECTIONS:
        if key in meta_graph.collection_def:
            names += list(meta_graph.collection_def[key].node_list.value)
    return [_node_name(name) for name in names]


def _single_op(op: str) -> NodeDef:
    from tensorflow.core.framework.node_def_pb2 import NodeDef

    return NodeDef(name=op, op=op)


def _reachable(meta_graph: MetaGraphDef, signature: str) -> Iterator[NodeDef]:
    """Every node serving ``signature`` can run: main-graph nodes its outputs (and the init ops)
    depend on, and every node of every function they call, transitively."""
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    library = {function.signature.name: function for function in graph.library.function}
    pending_nodes, seen_nodes = _root_nodes(meta_graph, signature), set()
    pending_functions, seen_functions = list(_load_time_functions(meta_graph)), set()
    while pending_nodes or pending_functions:
        if pending_nodes:
            name = pending_nodes.pop()
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            pending_nodes.extend(_node_name(tensor) for tensor in node.input)
            body: Iterable[NodeDef] = [node]
        else:
            name = pending_functions.pop()
            if name in seen_functions:
                continue
            seen_functions.add(name)
            # all of it: stateful nodes run through control outputs; a name outside the library is
            # instantiated as that op on its own, so it counts as one
            body = library[name].node_def if name in library else [_single_op(name)]
        for node in body:
            pending_functions.extend(_calls(node, library))
            if node.op not in library:
                yield node


def _serving_nodes(saved_model_dir: str, signature: str, parameter: str) -> list[NodeDef]:
    meta_graphs = _meta_graphs(saved_model_dir, parameter)
    serving = [graph for graph in meta_graphs if signature in graph.signature_def]
    if not serving:
        found = sorted({name for graph in meta_graphs for name in graph.signature_def if name != INIT_SIGNATURE})
        raise PatchFlowError(f"{saved_model_dir} has no '{signature}' signature (it has: {', '.join(found) or 'none'})"
                             ". Export the model with a serving_default signature.", parameter)
    return [node for graph in serving for node in _reachable(graph, signature)]


def reachable_ops(saved_model_dir: str, signature: str = SIGNATURE) -> set[str]:
    """Op types that loading the SavedModel and calling ``signature`` can run (graph parse only;
    nothing is loaded or executed)."""
    return {node.op for node in _serving_nodes(saved_model_dir, signature, "MODEL")}


# ---- the policy ----------------------------------------------------------------------------------


def is_unsafe(op: str) -> bool:
    """Whether an op type touches files, the network or the interpreter (by name)."""
    if op in HARMLESS:
        return False
    return op in UNSAFE_OPS or any(pattern in op for pattern in UNSAFE_PATTERNS)


def _unsafe_name(node: NodeDef) -> str | None:
    if node.op in _UNSAFE_WITH:
        attribute, prefix, doing = _UNSAFE_WITH[node.op]
        value = node.attr[attribute].s.decode(errors="replace") if attribute in node.attr else ""
        return f"{node.op} ({doing})" if value and value.startswith(prefix) else None
    return node.op if is_unsafe(node.op) else None


def unsafe_ops(path: str, parameter: str = "MODEL") -> list[str]:
    """Sorted unsafe op types that serving the SavedModel at ``path`` can run; [] for a ``.keras``
    file (its config is checked instead, see ``keras_findings``)."""
    if model_kind(path, parameter) == "keras":
        return []
    names = (_unsafe_name(node) for node in _serving_nodes(path, SIGNATURE, parameter))
    return sorted({name for name in names if name})


# ---- .keras files, read without Keras ------------------------------------------------------------

KERAS_CONFIG_LIMIT = 64 << 20  # bytes of config.json read at most
# what PatchFlow registers with @keras.saving.register_keras_serializable(package="patchflow")
PATCHFLOW_OBJECTS: frozenset[str] = frozenset({
    "PixelShuffle", "BilinearUpsample",  # srmodel.py
    "AdversarialTrainer",  # adversarial.py
    "ImageLoss", "psnr", "ssim",  # imageloss.py
    "SignatureLayer",  # modelio.py: calls a SavedModel, which is checked as one (below)
})
SIGNATURE_LAYER = "SignatureLayer"
# values Keras rebuilds from data, not from a class or a function
_KERAS_VALUES = frozenset({"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"})


def _invalid_keras(path: str, why: str, parameter: str) -> PatchFlowError:
    return PatchFlowError(f"{path} is not a valid .keras file ({why}). Expected {EXPECTED}.", parameter)


def keras_config(path: str, parameter: str = "MODEL") -> dict:
    """The ``config.json`` of a ``.keras`` file (a zip archive), read without Keras."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise _invalid_keras(path, "no config.json inside", parameter) from None
            if info.file_size > KERAS_CONFIG_LIMIT:
                raise _invalid_keras(path, f"its config.json holds {info.file_size:,} bytes", parameter)
            config = json.loads(archive.read(info).decode("utf-8"))
    except zipfile.BadZipFile:
        raise _invalid_keras(path, "not a zip archive", parameter) from None
    except (OSError, ValueError, RuntimeError, NotImplementedError, EOFError) as exc:
        # unreadable, not UTF-8 / JSON, encrypted, compressed with a method zipfile lacks, truncated
        raise _invalid_keras(path, f"its config.json cannot be read: {type(exc).__name__}", parameter) from None
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise _invalid_keras(path, "its config.json describes no model", parameter)
    return config


def _keras_objects(value) -> Iterator[dict]:
    """Every object (a dict with a ``class_name``) a Keras config holds, nested ones included."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _is_keras(module) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _patchflow_name(name) -> str | None:
    """``X`` for a registered name ``patchflow>X``, else None."""
    if isinstance(name, str) and name.startswith("patchflow>"):
        return name.split(">", 1)[1]
    return None


def _keras_object_risk(item: dict) -> str | None:
    """What deserialising one config object could do beyond building Keras's or PatchFlow's own
    layers, or None. Keras resolves a class by its registered name first, then only inside its own
    modules; a function by name among its built-ins (module "builtins") or in its modules."""
    class_name = item["class_name"]
    inner = item.get("config")
    label = f" '{inner['name']}'" if isinstance(inner, dict) and isinstance(inner.get("name"), str) else ""
    if not isinstance(class_name, str):
        return f"an object whose class name is not text ({type(class_name).__name__})"
    if class_name == "__lambda__":
        return "a Python function stored as code (__lambda__)"
    if class_name in _KERAS_VALUES:
        return None
    module = item.get("module")
    if class_name == "function":
        name = inner if isinstance(inner, str) else repr(inner)
        if _is_keras(module) or _patchflow_name(name) in PATCHFLOW_OBJECTS:
            return None
        if module == "builtins" and isinstance(inner, str) and inner.isidentifier():
            return None  # resolved among Keras's built-in activations, losses and metrics only
        return f"the function {name} of module {module} (not Keras's or PatchFlow's)"
    if class_name == "__typespec__":
        class_name = item.get("spec_name") if isinstance(item.get("spec_name"), str) else repr(item.get("spec_name"))
    registered = item["registered_name"] if "registered_name" in item else class_name
    if class_name == "Lambda" or _patchflow_name(registered) == "Lambda":
        return f"Lambda layer{label} (runs Python code)"
    if class_name == "TFSMLayer":
        filepath = inner.get("filepath") if isinstance(inner, dict) else None
        return f"TFSMLayer{label} (loads the external SavedModel {filepath})"
    if class_name == "TorchModuleWrapper":
        return f"TorchModuleWrapper{label} (unpickles a PyTorch module)"
    own = _patchflow_name(registered)
    if own is not None:
        if own not in PATCHFLOW_OBJECTS:
            return f"the class {registered} (not one PatchFlow registers)"
        if own == SIGNATURE_LAYER:
            return _signature_layer_risk(inner, label)
        return None
    if not _is_keras(module):
        return f"the class {module}.{class_name} (not Keras's or PatchFlow's)"
    if registered not in (None, class_name):
        return f"the class {class_name} registered as {registered} (not Keras's or PatchFlow's)"
    if isinstance(inner, dict) and isinstance(inner.get("vocabulary"), str):
        return f"layer{label} reading the vocabulary file {inner['vocabulary']}"
    return None


def _signature_layer_risk(inner, label: str) -> str | None:
    """PatchFlow's wrapper of a user's SavedModel (fine-tuning it): safe when that SavedModel is."""
    filepath = inner.get("filepath") if isinstance(inner, dict) else None
    if not isinstance(filepath, str):
        return f"SignatureLayer{label} without a SavedModel path"
    try:
        found = unsafe_ops(filepath, "MODEL") if os.path.isdir(filepath) else None
    except PatchFlowError:
        found = None
    if found is None:
        return f"SignatureLayer{label} (loads the external SavedModel {filepath}, which cannot be checked)"
    if found:
        return f"SignatureLayer{label} (loads the external SavedModel {filepath}, with ops {', '.join(found)})"
    return None


def keras_findings(path: str, parameter: str = "MODEL") -> list[str]:
    """Sorted reasons why loading the ``.keras`` file at ``path`` could run code or touch files:
    Lambda layers, TFSMLayers, ``__lambda__`` functions, classes and functions that are neither
    Keras's own nor PatchFlow's registered ones, vocabulary files. Read from its config.json only:
    Keras is not imported, nothing is built."""
    config = keras_config(path, parameter)
    return sorted({risk for risk in map(_keras_object_risk, _keras_objects(config)) if risk})


# ---- the check -----------------------------------------------------------------------------------


def keras_safe_mode(trusted: bool) -> bool:
    """The ``safe_mode`` to load a ``.keras`` file with, once ``check_model`` has passed."""
    return not trusted


def findings(path: str, parameter: str = "MODEL") -> list[str]:
    """What loading or serving the model at ``path`` could do to this computer, read without
    loading it: a SavedModel's unsafe ops, a .keras file's code and foreign classes; for a PatchFlow
    SavedModel both (its ``model.keras`` is what fine-tuning loads)."""
    kind = model_kind(path, parameter)
    if kind == "keras":
        return keras_findings(path, parameter)
    found = [f"op {name}" for name in unsafe_ops(path, parameter)]
    if kind == "patchflow":
        found += [f"{TRAINING_MODEL}: {risk}" for risk in keras_findings(os.path.join(path, TRAINING_MODEL), parameter)]
    return found


def check_model(path: str, trusted: bool, parameter: str = "MODEL", reporter: Reporter | None = None) -> None:
    """Refuse a model that can run code, touch files, the network or the interpreter unless
    ``trusted``; a trusted one is let through with a warning naming what it does. Nothing is loaded."""
    found = findings(path, parameter)
    if not found:
        return
    if not trusted:
        raise PatchFlowError(f"{path} could run code or touch files, the network or the Python interpreter on this "
                             f"computer: it holds {'; '.join(found)}. {REFUSED}", parameter)
    if reporter is not None:
        keras_file = model_kind(path, parameter) == "keras" or any(f.startswith(TRAINING_MODEL) for f in found)
        how = " with Keras safe mode off" if keras_file else ""
        reporter.warning(f"{path} is trusted (TRUST_MODEL): loading it{how} although it holds {'; '.join(found)}.")


def open_model(path: str, trusted: bool = False, parameter: str = "MODEL", reporter: Reporter | None = None,
               trainable: bool = False, compile: bool = False, digest: str | None = None):
    """THE model-loading gate: every network PatchFlow loads comes through here. ``check_model``
    runs first (graph and config parsed, nothing loaded or traced), then TensorFlow / Keras load it,
    a ``.keras`` file in safe mode unless trusted. Returns an ``InferenceModel``, or with
    ``trainable`` the Keras model to train and its card (``compile``: with its optimiser state, a
    training checkpoint). With ``digest`` (a Dask worker): checked on the client, its files must hash to it."""
    from . import modelcache, modeldigest, modelio

    if digest is None:
        check_model(path, trusted, parameter, reporter)
    else:  # the client ran check_model on exactly these files (scale/)
        modeldigest.verify_digest(path, digest, parameter)
    safe_mode = keras_safe_mode(trusted)
    if trainable:
        return modelio.open_trainable(path, parameter, safe_mode, compile)
    # a warm worker reuses the model it loaded for an earlier job: same files, same trust decision
    return modelcache.cached(path, trusted, parameter, lambda: modelio.InferenceModel.open(path, parameter, safe_mode),
                             reporter)
