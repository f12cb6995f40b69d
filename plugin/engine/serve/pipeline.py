"""The serving pipeline: reading, inference and writing overlap; a reader thread prepares the next blocks, a
writer thread encodes and writes finished ones, the model runs in between on batches of tiles; queues of a few
blocks bound memory, and cancelling stops it between batches.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator

import numpy as np
from osgeo import gdal

from ..errors import Cancelled
from ..params import RunContext
from .clipping import Clip
from .inference import infer_group
from .outputs import OutputFormat, write_tile
from .plan import ServingPlan, output_size
from .tiles import Tile, tile_count, tiles

QUEUE_BLOCKS = 2  # blocks waiting between the threads, each way
_DONE = object()
TILES_START, TILES_END = 10.0, 97.0  # progress over the tiles (before: loading and measuring the model)
BACKGROUND_NICENESS = 10  # reader and writer threads: scheduled in the model's idle time first


def yield_to_the_model() -> None:
    """Lower this thread's scheduling priority (Linux: per thread). On a busy CPU, TensorFlow's
    threads then run first and reading/writing fill the gaps, instead of preempting a convolution
    whose other threads then wait for it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: the default priority
        pass


def threaded(producer: Iterator, stop: threading.Event) -> Iterator:
    """Items of ``producer`` made in a thread, QUEUE_BLOCKS ahead; its exceptions re-raised here."""
    items: queue.Queue = queue.Queue(QUEUE_BLOCKS)

    def run() -> None:
        yield_to_the_model()
        try:
            for item in producer:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            items.put(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class Writer:
    """Encodes, counts and writes finished tiles in a thread, off the model's path, so GDAL's
    compression overlaps the next inference."""

    def __init__(self, ds: gdal.Dataset, fmt: OutputFormat) -> None:
        self.ds, self.fmt = ds, fmt
        self.items: queue.Queue = queue.Queue(QUEUE_BLOCKS)
        self.error: BaseException | None = None
        self.counts: dict[int, int] = {}
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        yield_to_the_model()
        while True:
            item = self.items.get()
            if item is _DONE:
                return
            if self.error is None:
                try:
                    tile, result = item
                    write_tile(self.ds, self.fmt, tile, result, self.counts)
                except BaseException as exc:  # noqa: BLE001 - re-raised by close()
                    self.error = exc

    def put(self, tile: Tile, result: np.ndarray | None) -> None:
        if self.error is not None:
            raise self.error
        self.items.put((tile, result))

    def close(self) -> None:
        self.items.put(_DONE)
        self.thread.join()
        if self.error is not None:
            raise self.error


def batches(plan: ServingPlan, stream: Iterator[Tile]) -> Iterator[list[Tile]]:
    """Tiles grouped for one model call: up to BATCH_SIZE blocks (fully convolutional; blocks all
    have one size), one strip (patch-based); a tile with nothing valid alone."""
    size = plan.batch if plan.mode == "fully_convolutional" else 1
    pending: list[Tile] = []
    for tile in stream:
        if tile.inputs is None:
            yield [tile]
            continue
        pending.append(tile)
        if len(pending) >= size:
            yield pending
            pending = []
    if pending:
        yield pending


def serve(plan: ServingPlan, ds: gdal.Dataset, fmt: OutputFormat, context: RunContext,
          clip: Clip | None = None) -> dict[int, int]:
    """Every tile read, run (its values bounded by ``clip``) and written; returns per-class pixel counts for
    class maps (else empty)."""
    out_w, out_h = output_size(plan)
    total = out_w * out_h
    done = tiles_done = 0
    count = tile_count(plan)
    stop = threading.Event()
    writer = Writer(ds, fmt)
    try:
        context.reporter.stage(f"tiles 0/{count}", TILES_START, log=False)
        for group in batches(plan, threaded(tiles(plan), stop)):
            if context.cancelled():
                raise Cancelled()
            results = [None] if group[0].inputs is None else infer_group(plan, group)
            for tile, result in zip(group, results):
                if clip is not None and result is not None:
                    result = clip.apply(result, tile.invalid)
                writer.put(tile, result)
                done += tile.out_w * tile.out_h
            tiles_done += len(group)
            context.reporter.stage(f"tiles {tiles_done}/{count}", log=False)
            context.reporter.progress(TILES_START + (TILES_END - TILES_START) * done / total)
    finally:
        writer.close()
    return writer.counts
