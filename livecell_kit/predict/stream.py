"""Many images to cells, with the post-processing overlapped with the forward pass.

:func:`stream_cells` runs three stages at once, so the rate approaches the slowest stage
rather than the sum of all: a producer thread reads the inputs and runs the model
(TensorFlow releases the GIL), a pool of ``workers`` threads runs
:func:`livecell_kit.instances.split_cells` (numpy, scipy and scikit-image release the GIL
in large parts; big frames tile by tile, ``split_any_size``), and the caller consumes the results (writing files, say) in input
order.  At most ``pending`` frames (and ``pending_pixels`` pixels) are in flight, so memory
does not grow with the number of inputs.
"""
from __future__ import annotations

import collections
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np

from livecell_kit.instances import split_any_size
from livecell_kit.predict.core import as_model_input, concurrent_passes, default_batch_size, predict_batch
from livecell_kit.presets import CELL_SPLITTING, STREAM_PENDING_PIXELS, CellSplitting

_DONE = object()  # the producer's last item


class StreamedFrame(NamedTuple):
    """One input's result, in input order.

    key: what the input iterable paired with the image; output: float32 (H, W, C) model
    output (C = 1 for a semantic model); labels: int32 (H, W) cells, 0 = background;
    scores: {label: score} (:func:`split_cells`).  error: the input's exception (then
    labels and scores are None, and output too unless split_cells refused it) — a bad
    input does not stop the others.
    """

    key: Any
    output: np.ndarray | None
    labels: np.ndarray | None
    scores: dict | None
    error: BaseException | None = None


def _cells(key, output: np.ndarray, splitting: CellSplitting, threshold, scores: bool) -> StreamedFrame:
    try:
        labels, found = split_any_size(output, splitting, threshold=threshold, scores=scores)
    except ValueError as err:  # split_cells refused this output: that frame's error
        return StreamedFrame(key, output, None, None, err)
    return StreamedFrame(key, output, labels, found)


def _failed(key, error: BaseException) -> Future:
    done: Future = Future()
    done.set_result(StreamedFrame(key, None, None, None, error))
    return done


def _batches(items: Iterator, batch_size: int) -> Iterator[list]:
    """Runs of up to ``batch_size`` consecutive (key, image) pairs of one shape; an image that
    is an exception or not a valid grey image comes alone as (key, None, error).  When
    ``items`` itself raises, the run read so far comes first."""
    run: list = []
    while True:
        try:
            key, image = next(items)
        except StopIteration:
            break
        except BaseException:
            yield from ([run] if run else [])
            raise
        try:
            if isinstance(image, BaseException):
                raise image
            image = as_model_input(image)
        except (ValueError, OSError) as err:
            yield from ([run] if run else [])
            run = []
            yield [(key, None, err)]
            continue
        if run and run[0][1].shape != image.shape:
            yield run
            run = []
        run.append((key, image, None))
        if len(run) == batch_size:
            yield run
            run = []
    if run:
        yield run


class _PixelBudget:
    """Pixels of the frames in flight: :meth:`take` waits while the others hold more than
    ``limit`` together (a frame alone always may go), or until ``stop``."""

    def __init__(self, limit: int, stop: threading.Event):
        self.limit, self.stop, self.used = limit, stop, 0
        self.changed = threading.Condition()

    def take(self, pixels: int) -> bool:
        with self.changed:
            while self.used and self.used + pixels > self.limit:
                if self.stop.is_set():
                    return False
                self.changed.wait(0.1)
            self.used += pixels
            return True

    def fits(self, pixels: int) -> bool:
        """Whether :meth:`take` would go at once (only :meth:`give` changes that meanwhile: for the better)."""
        with self.changed:
            return not self.used or self.used + pixels <= self.limit

    def give(self, pixels: int) -> None:
        with self.changed:
            self.used -= pixels
            self.changed.notify_all()


def _produce(model, items, out: queue.Queue, stop: threading.Event, budget: _PixelBudget,
             pool: ThreadPoolExecutor, batch_size: int, tile, splitting, threshold, scores: bool) -> None:
    """Predict batches, up to :func:`concurrent_passes` at once, and hand each frame's split to
    ``pool``; ``(future, pixels)`` go into ``out`` in input order."""
    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def hand_over(run, pixels, predicted: Future) -> bool:
        try:
            outputs = predicted.result()
        except ValueError as err:  # e.g. an image smaller than the model accepts
            futures = [_failed(key, err) for key, _, _ in run]
        else:
            outputs = outputs[..., None] if outputs.ndim == 3 else outputs
            futures = [pool.submit(_cells, key, output, splitting, threshold, scores)
                       for (key, _, _), output in zip(run, outputs)]
        return all(put((future, frame_pixels)) for future, frame_pixels in zip(futures, pixels))

    passes = concurrent_passes()
    in_flight: collections.deque = collections.deque()  # (run, pixels, future of its outputs), oldest first

    def hand_over_while(condition) -> bool:
        """Hand the oldest batches over while ``condition()``; False once stopped."""
        while in_flight and condition():
            if not hand_over(*in_flight.popleft()):
                return False
        return True

    runs, broken = _batches(items, batch_size), None
    try:
        with ThreadPoolExecutor(max_workers=passes, thread_name_prefix="predict") as predictor:
            while True:
                try:
                    run = next(runs)
                except StopIteration:
                    break
                except BaseException as err:  # the inputs themselves broke: after the frames before
                    broken = err
                    break
                pixels = [0 if image is None else image.size for _, image, _ in run]
                # Frames predicted but not handed over would hold the pixel budget this one waits for;
                # an input that failed before the model comes after the frames before it.
                if not hand_over_while(lambda: run[0][1] is None or not budget.fits(sum(pixels))):
                    return
                if run[0][1] is None:
                    if not put((_failed(run[0][0], run[0][2]), 0)):
                        return
                    continue
                if not budget.take(sum(pixels)):
                    return
                in_flight.append((run, pixels, predictor.submit(
                    predict_batch, model, [image for _, image, _ in run], batch_size=batch_size, tile=tile)))
                # at most `passes` batches in the model, none read ahead of them
                if not hand_over_while(lambda: len(in_flight) >= passes):
                    return
            if not hand_over_while(lambda: True):
                return
        put(_DONE if broken is None else broken)
    except BaseException as err:  # a prediction broke beyond one frame: the consumer re-raises it
        put(err)


def stream_cells(model, images: Iterable, batch_size: int | None = None, workers: int = 1,
                 pending: int | None = None, pending_pixels: int = STREAM_PENDING_PIXELS,
                 tile: int | None = None,
                 splitting: CellSplitting = CELL_SPLITTING, threshold: float | None = None,
                 scores: bool = True) -> Iterator[StreamedFrame]:
    """Model output and cells of every image, in input order, overlapping the stages.

    images: iterable of ``(key, image)`` pairs, image (H, W) uint8 0–255 (any size; an
        exception in place of the image is passed through as that key's error).
    batch_size: images per forward pass (consecutive same-size images are batched);
        default :func:`default_batch_size`.
    workers: threads running :func:`split_cells` at once.
    pending: frames in flight at most (predicted or being split, not yet consumed), beside the
        :func:`concurrent_passes` batches in the model: bounds memory at about ``pending`` ×
        (image + output + labels); default ``2 * (workers + batch_size)``.
    pending_pixels: image pixels in flight at most, the same way (a frame alone always
        goes): big frames (4000×4000, tiled) go one at a time.
    tile, splitting, threshold: as in :func:`livecell_kit.predict.predict_array`.
    scores: False leaves each frame's ``scores`` empty, a third less post-processing.
    Yields :class:`StreamedFrame`.  A bad image or a failed prediction or split becomes
    that frame's ``error``; an exception raised by the ``images`` iterable itself is
    raised here after the frames before it.  Closing the generator early stops the work.
    """
    batch_size = default_batch_size() if batch_size is None else max(1, int(batch_size))
    workers = max(1, int(workers))
    pending = 2 * (workers + batch_size) if pending is None else max(1, int(pending))
    futures: queue.Queue = queue.Queue(maxsize=pending)
    stop = threading.Event()
    budget = _PixelBudget(int(pending_pixels), stop)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="split_cells") as pool:
        producer = threading.Thread(target=_produce, name="predict", daemon=True,
                                    args=(model, iter(images), futures, stop, budget, pool, batch_size, tile,
                                          splitting, threshold, scores))
        producer.start()
        held = 0  # pixels of the frame the caller had: given back when it asks for the next
        try:
            while True:
                budget.give(held)
                item = futures.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                future, held = item
                yield future.result()
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    futures.get(timeout=0.05)
                except queue.Empty:
                    pass
            producer.join()
