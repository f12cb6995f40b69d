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
* A ``.keras`` file is checked by loading it with Keras safe mode on, which refuses Python lambdas
  (``Lambda`` layers) and ``TFSMLayer`` (an external SavedModel); a trusted one is loaded with safe
  mode off (``keras_safe_mode``).

The deny list (``UNSAFE_OPS``) is conservative, checked against TensorFlow's op registry: file reading and
writing (checkpoints, readers, file-backed datasets and lookup tables, summary and debug writers),
the Python interpreter (``PyFunc``), remote execution and tf.data services. Op names containing
``UNSAFE_PATTERNS`` (File, PyFunc, Rpc, Gcs, BigQuery, Bigtable) are refused too, whatever their
library, except two string-formatting ops of the saver (``HARMLESS``). ``PrintV2`` counts only when
it prints to a ``file://`` stream, ``FixedUnigramCandidateSampler`` only when it reads a vocabulary file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .errors import PatchFlowError
from .modelio import EXPECTED, SIGNATURE, _signature_layer_class, model_kind

if TYPE_CHECKING:
    from tensorflow.core.framework.attr_value_pb2 import AttrValue
    from tensorflow.core.framework.node_def_pb2 import NodeDef
    from tensorflow.core.protobuf.meta_graph_pb2 import MetaGraphDef

    from .reporting import Reporter

TRUST = 'tick TRUST_MODEL ("I trust this model") only if the model comes from a source you trust'

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
    """Sorted unsafe op types that serving the model at ``path`` can run; [] for a ``.keras`` file
    (Keras safe mode guards those, see ``check_model``)."""
    if model_kind(path, parameter) == "keras":
        return []
    names = (_unsafe_name(node) for node in _serving_nodes(path, SIGNATURE, parameter))
    return sorted({name for name in names if name})


# ---- the check -----------------------------------------------------------------------------------


def keras_safe_mode(trusted: bool) -> bool:
    """The ``safe_mode`` to load a ``.keras`` file with, once ``check_model`` has passed."""
    return not trusted


def _keras_refusal(path: str) -> str | None:
    """Why Keras safe mode refuses the file (its first sentence), or None. Other load failures
    are not a safety matter: the loader reports them."""
    import keras

    _signature_layer_class()  # registered, so a wrapped SavedModel is refused for what it is
    try:
        keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras wraps layer errors in several kinds
        message = str(exc)
        if "safe_mode" not in message:
            return None
        start = message.find("Requested the deserialization")
        return message[max(start, 0):].split(". ")[0].strip()
    return None


def check_model(path: str, trusted: bool, parameter: str = "MODEL", reporter: Reporter | None = None) -> None:
    """Refuse a model that can touch files, the network or the interpreter unless ``trusted``;
    a trusted one is let through with a warning naming what it does."""
    if model_kind(path, parameter) == "keras":
        reason = _keras_refusal(path)
        if reason is None:
            return
        if not trusted:
            raise PatchFlowError(f"{path} holds code that Keras refuses to load in safe mode: {reason}. It could "
                                 f"run anything on this computer; {TRUST}.", parameter)
        if reporter is not None:
            reporter.warning(f"{path} is trusted: loading it with Keras safe mode off ({reason}).")
        return
    found = unsafe_ops(path, parameter)
    if not found:
        return
    if not trusted:
        raise PatchFlowError(f"{path} contains ops that touch files, the network or the Python interpreter: "
                             f"{', '.join(found)}. Serving it could read or change files on this computer; "
                             f"{TRUST}.", parameter)
    if reporter is not None:
        reporter.warning(f"{path} is trusted although it contains ops that touch files, the network or the "
                         f"Python interpreter: {', '.join(found)}.")
