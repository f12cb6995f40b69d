"""DEVICE "multi-worker": one training on several machines with tf.distribute's
MultiWorkerMirroredStrategy. Every machine runs the same command; the cluster comes from TF_CONFIG,
else from the SLURM job step (``srun``) through SlurmClusterResolver, and is checked here before
TensorFlow starts.

The chief (task 0) writes everything: the checkpoints in ``<OUTPUT>.training/``, the model, its
card, the report and the history, staged as usual. Every other worker trains in a folder of its
own under the system's temporary folder (its checkpoints, record cache and logs, which nobody
reads), removed when it ends; to RESUME, it starts from a copy of the chief's last complete epoch.
The record cache is sharded by worker (tf.data AutoShardPolicy.DATA): BATCH_SIZE is the global
batch, each worker computes its share of every batch (BATCH_SIZE / workers), so the same seed
gives the same batches as one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import PatchFlowError
from ..reporting import Reporter
from .trainsettings import BEST, CHECKPOINT, STATE

if TYPE_CHECKING:
    from .trainsetup import TrainingPlan

MULTI_WORKER = "multi-worker"
SLURM_STEP = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE")
SLURM_PORT = 8888  # the first task of each node listens here, the next ones on the following ports
HOW = ("Set TF_CONFIG on every machine, e.g. {\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
       "\"task\": {\"type\": \"worker\", \"index\": 0}} (index 1 on host2), or start the same command on every node "
       "with srun inside an sbatch script (docs/scaling.md, 'Training on several machines'); else choose another "
       "device.")


@dataclass(frozen=True)
class Cluster:
    source: str  # "TF_CONFIG" or "SLURM"
    workers: int  # the tasks training together, the chief included
    index: int  # this task's rank: 0 is the chief

    @property
    def chief(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        role = "the chief: it writes the outputs" if self.chief else "its outputs go to a temporary folder"
        return f"task {self.index} of {self.workers} ({role})"


def cluster_of(device: str, environ: Mapping[str, str] | None = None) -> Cluster | None:
    """The cluster this process trains in (None unless DEVICE is multi-worker), from TF_CONFIG, else
    from the SLURM step; a clear error naming DEVICE when neither describes one."""
    if device != MULTI_WORKER:
        return None
    environ = os.environ if environ is None else environ
    if environ.get("TF_CONFIG", "").strip():
        return tf_config_cluster(environ["TF_CONFIG"])
    if all(environ.get(name) for name in SLURM_STEP):
        return slurm_cluster(environ)
    if environ.get("SLURM_JOB_ID"):
        raise PatchFlowError(f"the 'several machines' device found the SLURM job {environ['SLURM_JOB_ID']} but no job "
                             f"step ({', '.join(n for n in SLURM_STEP if not environ.get(n))} not set): start the "
                             "command with srun inside the sbatch script, one task per node.", "DEVICE")
    raise PatchFlowError(f"the 'several machines' device needs a cluster: neither TF_CONFIG nor a SLURM job step "
                         f"is set. {HOW}", "DEVICE")


def tf_config_cluster(text: str) -> Cluster:
    """TF_CONFIG checked as MultiWorkerMirroredStrategy reads it: 'chief' (one) and 'worker' tasks."""
    def bad(why: str) -> PatchFlowError:
        return PatchFlowError(f"TF_CONFIG {why}. {HOW}", "DEVICE")

    try:
        config = json.loads(text)
    except ValueError as exc:
        raise bad(f"is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict) or \
            not isinstance(config.get("task"), dict):
        raise bad("needs a 'cluster' object and a 'task' object")
    cluster, task = config["cluster"], config["task"]
    others = sorted(set(cluster) - {"chief", "worker"})
    if others:
        raise bad(f"names {', '.join(others)} tasks: training on several machines takes 'chief' and 'worker' tasks "
                  "only")
    jobs = {name: cluster.get(name) or [] for name in ("chief", "worker")}
    for name, addresses in jobs.items():
        if not isinstance(addresses, list) or not all(isinstance(a, str) and address_ok(a) for a in addresses):
            raise bad(f"'{name}' must be a list of \"host:port\" addresses (got {json.dumps(addresses)})")
    if len(jobs["chief"]) > 1:
        raise bad("has more than one 'chief'")
    if not jobs["chief"] and not jobs["worker"]:
        raise bad("lists no worker")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in ("chief", "worker") or not jobs[kind]:
        named = ", ".join(job for job in jobs if jobs[job])
        raise bad(f"task type {json.dumps(kind)} is not one of the cluster's jobs ({named})")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[kind]):
        raise bad(f"task index {json.dumps(index)} is not between 0 and {len(jobs[kind]) - 1} ('{kind}' lists "
                  f"{len(jobs[kind])})")
    rank = index + (len(jobs["chief"]) if kind == "worker" else 0)
    return Cluster("TF_CONFIG", len(jobs["chief"]) + len(jobs["worker"]), rank)


def address_ok(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def slurm_cluster(environ: Mapping[str, str]) -> Cluster:
    try:
        rank, tasks = int(environ["SLURM_PROCID"]), int(environ["SLURM_STEP_NUM_TASKS"])
    except ValueError:
        raise PatchFlowError(f"SLURM_PROCID ({environ['SLURM_PROCID']}) and SLURM_STEP_NUM_TASKS "
                             f"({environ['SLURM_STEP_NUM_TASKS']}) must be numbers: is this a SLURM job step?",
                             "DEVICE") from None
    if not 0 <= rank < tasks:
        raise PatchFlowError(f"SLURM_PROCID {rank} is not a task of the step's {tasks}.", "DEVICE")
    tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
    return Cluster("SLURM", tasks, rank)


# ---- TensorFlow -------------------------------------------------------------------------------------


def start(cluster: Cluster, batch_size: int, reporter: Reporter):
    """Join the cluster: a MultiWorkerMirroredStrategy (each worker waits here for the others)."""
    import tensorflow as tf

    resolver = slurm_resolver(os.environ) if cluster.source == "SLURM" else None
    try:
        strategy = _strategy_class()(cluster_resolver=resolver)
    except RuntimeError as exc:  # "Collective ops must be configured at program startup"
        raise PatchFlowError(f"this process has already run TensorFlow ({exc}): a training on several machines "
                             "needs a process of its own. Run it with the engine's command line on every machine "
                             "(docs/scaling.md), not in a worker that ran other jobs.", "DEVICE") from None
    replicas = strategy.num_replicas_in_sync
    gpus = len(tf.config.list_logical_devices("GPU"))
    reporter.log(f"device: {cluster.workers} workers (MultiWorkerMirroredStrategy, cluster from {cluster.source}), "
                 f"{replicas} replicas ({'GPU' if gpus else 'CPU'}); this is {cluster.describe()}")
    reporter.log(f"batches: BATCH_SIZE {batch_size} is the global batch, {batch_size / replicas:g} samples per "
                 f"replica ({replicas} replicas on {cluster.workers} workers); each worker reads the record cache and "
                 "keeps its share of every batch")
    if batch_size % replicas:
        reporter.warning(f"BATCH_SIZE {batch_size} is not a multiple of the {replicas} replicas: they get unequal "
                         "shares of each batch.")
    return strategy


def slurm_resolver(environ: Mapping[str, str]):
    """SlurmClusterResolver for this step: a node's tasks listen on SLURM_PORT, SLURM_PORT + 1...
    With several tasks on a node, the resolver shares its GPUs out (CUDA_VISIBLE_DEVICES); with one,
    or on nodes without a GPU (given one per task, for the resolver's arithmetic), it leaves
    CUDA_VISIBLE_DEVICES as SLURM set it."""
    import tensorflow as tf

    per_node = tasks_per_node(environ["SLURM_STEP_TASKS_PER_NODE"])
    gpus = node_gpus(environ)
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver
    if gpus >= per_node > 1:
        return resolver(port_base=SLURM_PORT, gpus_per_node=gpus)
    return resolver(port_base=SLURM_PORT, gpus_per_node=max(gpus, per_node), gpus_per_task=max(1, gpus // per_node),
                    auto_set_gpu=False)


def tasks_per_node(text: str) -> int:
    """The most tasks on one node, from SLURM_STEP_TASKS_PER_NODE ("2(x3),1": 2 on 3 nodes, 1 on one)."""
    try:
        return max(int(part.split("(")[0]) for part in text.split(","))
    except ValueError:
        raise PatchFlowError(f"SLURM_STEP_TASKS_PER_NODE '{text}' is not SLURM's list of tasks per node (e.g. "
                             "'2(x3),1'): is this a SLURM job step?", "DEVICE") from None


def node_gpus(environ: Mapping[str, str]) -> int:
    """GPUs of this node: those CUDA_VISIBLE_DEVICES lists, else nvidia-smi's, else 0."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listed.splitlines())


_STRATEGY: list[type] = []


def _strategy_class() -> type:
    """MultiWorkerMirroredStrategy with a ``reduce`` that Keras 3's fit can use: Keras reduces a whole
    batch (a tuple) to build the model and scalar metrics along axis 0, both of which the strategy
    refuses (keras-team/keras#20585); here each tensor is reduced in turn, a scalar across replicas."""
    if not _STRATEGY:
        import tensorflow as tf

        class KerasMultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
            def reduce(self, reduce_op, value, axis):
                if isinstance(value, (tuple, list, dict)):
                    return tf.nest.map_structure(lambda item: self.reduce(reduce_op, item, axis), value)
                if axis is not None and len(self.experimental_local_results(value)[0].shape) == 0:
                    axis = None  # a scalar (a metric): reduced across the replicas
                return super().reduce(reduce_op, value, axis)

        _STRATEGY.append(KerasMultiWorkerStrategy)
    return _STRATEGY[0]


def is_distributed(strategy) -> bool:
    return type(strategy).__name__ == "KerasMultiWorkerStrategy"


def lost_worker(exc: BaseException) -> PatchFlowError | None:
    """A collective that failed because a worker stopped or cannot be reached, as a clear error."""
    import tensorflow as tf

    if not isinstance(exc, (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError,
                            tf.errors.CancelledError)):
        return None
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", str(exc)).strip()  # without TensorFlow's {{function_node ...}}
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    return PatchFlowError(f"a worker of the cluster stopped or cannot be reached ({first}). The chief keeps the last "
                          "complete epoch in <OUTPUT>.training: start every worker again, with RESUME, to continue "
                          "from it.", "DEVICE")


def leave_out_tiny_batches(plan: TrainingPlan, replicas: int, reporter: Reporter) -> None:
    """An epoch's last batch is split between the replicas: one of fewer samples than replicas would
    leave a replica an empty share, on which TensorFlow's CPU convolutions fail (and a batch
    normalisation's statistics would be NaN). Such a batch is left out of each epoch."""
    for name, stream in (("training", plan.train_stream), ("validation", plan.valid_stream)):
        if stream is None:
            continue
        stream.smallest_batch = replicas
        rest = stream.dataset.count % stream.batch_size
        if 0 < rest < replicas:
            reporter.warning(f"the {name} set's last batch ({rest} of {stream.dataset.count} patches) is smaller than "
                             f"the {replicas} replicas: it is left out of each epoch.")


# ---- the other workers' folders ---------------------------------------------------------------------


def worker_folder(output: str, cluster: Cluster) -> str:
    """A worker's own empty folder under the temporary folder, named by OUTPUT and the task (a killed
    run's is replaced)."""
    digest = hashlib.sha1(os.path.abspath(output).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"patchflow-task-{digest}-{cluster.index}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def copy_checkpoint(chief_work: str, work: str) -> bool:
    """The chief's last complete epoch copied into this worker's work folder (the state last: a copy
    cut short is never resumed from). The chief only changes it once every worker trains."""
    if not os.path.isfile(os.path.join(chief_work, STATE)):
        return False
    try:
        os.makedirs(work, exist_ok=True)
        for name in (CHECKPOINT, BEST, STATE):
            if os.path.exists(os.path.join(chief_work, name)):
                shutil.copy2(os.path.join(chief_work, name), os.path.join(work, name))
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
        return False
    return True


def worker_outputs(epochs: int, best_epoch: int, saved_epoch: int, seed: int) -> dict[str, Any]:
    """What a worker other than the chief answers: the epochs it trained, no file."""
    from ...declarations import OPERATIONS

    outputs: dict[str, Any] = {"OUTPUT": None, **{output.name: None for output in OPERATIONS["train_model"].outputs}}
    outputs.update({"EPOCHS_RUN": epochs, "BEST_EPOCH": best_epoch, "SAVED_EPOCH": saved_epoch, "KEPT_SEED": seed})
    return outputs


def writes_outputs(operation: str, parameters: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> bool:
    """False for a worker other than the chief of a multi-worker training: it writes no output, so
    it locks none (the chief, maybe on this machine, does)."""
    if operation != "train_model" or parameters.get("DEVICE") != MULTI_WORKER:
        return True
    try:
        cluster = cluster_of(MULTI_WORKER, environ)
    except PatchFlowError:
        return True  # the training says why
    return cluster is None or cluster.chief
