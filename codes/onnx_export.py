"""Exporting a loaded network to ONNX: the graph between the radiometry's scalings (UnitRangeNetwork), the trace
(torch.onnx's TorchScript exporter, the dynamo exporter needing onnxscript), and the comparison of an onnxruntime
session with PyTorch. export_onnx.py is its command line; deploy's onnxruntime backend exports on the fly with it.
"""
import contextlib
import io
import math
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from errors import UserError
from onnx_graph import INPUT_NAME, OUTPUT_NAME, open_session
from radiometry import Radiometry, default_white

TOLERANCE = 1e-4  # largest |onnxruntime - PyTorch| accepted, in output units ([0, 1] = full white)
# Dynamic graphs are traced at this size: odd, not square and no multiple of a window or patch size, so that code
# which depends on the size (padding up to a window multiple) is traced in its general form.
DYNAMIC_TRACE_SIZE = (43, 37)


class UnitRangeNetwork(nn.Module):
    """The network between the radiometry's scalings: [0, 1] in (x rgb_range for the network), [0, 1] out; `clamp`
    clips the output to [0, 1] (QGIS Deepness casts output x 255 to uint8 without clipping, so an overshoot would
    wrap around: a dark pixel below 0 would turn white). `pre_upsample` = (scale, levels, top): a pre-upsampled
    network (SRCNN, VDSR, LGCNet) gets its input upsampled inside the graph as OpenCV's INTER_CUBIC does it on the
    file's integer values: the cubic kernel a = -0.75 on half-pixel centres, then rounded to 1/levels and saturated
    at top/levels (levels: the white level; top: the dtype's largest value), which equals cv2.resize exactly."""

    def __init__(self, net, rgb_range, clamp=False, pre_upsample=None):
        super().__init__()
        self.net = net
        self.rgb_range = float(rgb_range)
        self.clamp = clamp
        self.pre_upsample = pre_upsample

    def forward(self, x):
        if self.pre_upsample:
            scale, levels, top = self.pre_upsample
            x = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
            x = torch.round(x * levels).clamp(0.0, top) / levels
        y = self.net(x) if self.rgb_range == 1.0 else self.net(x * self.rgb_range) / self.rgb_range
        return y.clamp(0.0, 1.0) if self.clamp else y


def export_graph(network, n_colors, size, opset):
    """The ONNX bytes of `network` (a UnitRangeNetwork): N dynamic; H, W fixed at `size` (h, w), or dynamic (None)."""
    height, width = size or DYNAMIC_TRACE_SIZE
    example = torch.rand(1, n_colors, height, width, generator=torch.Generator().manual_seed(0))
    spatial = {} if size else {2: "height", 3: "width"}
    out_spatial = {} if size else {2: "out_height", 3: "out_width"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings(), native_output_discarded():
        # TracerWarnings flag Python values taken from the input's size: whether the graph is right at other sizes
        # is checked by running it there (Exporter.runs_at_other_sizes), not guessed from them.
        warnings.simplefilter("ignore")
        torch.onnx.export(network, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "batch", **spatial}, OUTPUT_NAME: {0: "batch", **out_spatial}})
    return buffer.getvalue()


@contextlib.contextmanager
def native_output_discarded():
    """Discard what is written to the stdout/stderr file descriptors meanwhile: when an export fails, torch's
    TorchScript exporter dumps its whole intermediate graph there from C++ (its log switch is left on); the error
    raised says what failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = os.dup(1), os.dup(2)
    except OSError:  # no such descriptors to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy_of_fd in zip((1, 2), saved):
            os.dup2(copy_of_fd, fd)
            os.close(copy_of_fd)


class Exporter:
    """A loaded network (model.Model), exported on demand; it takes the network over (no copy: the model's own
    eval-mode network is traced and is the reference the graphs are compared with). A trace computes everything from
    the input and the weights: the Swin attention masks a run caches are neither read nor filled while tracing
    (model/common.py), so what ran before does not enter a graph. `clamp`: outputs clipped to [0, 1] (the
    fixed-size graphs for Deepness)."""

    def __init__(self, cfg, model, clamp=False):
        self.cfg = cfg
        self.clamp = clamp
        self.attention = cfg.attention
        pre_upsample = None
        if model.pre_upsample is not None:
            if not cfg.cubic_input:
                raise UserError(f"{cfg.model} was trained on MATLAB-bicubic pre-upsampled inputs (--no-cubic_input), "
                                f"which have no ONNX form: export a model trained with --cubic_input (OpenCV's "
                                f"bicubic, the official pipeline's)")
            record = cfg.trained_with["radiometry"]
            training = Radiometry.from_record(record, cfg.checkpoint_path) if record else Radiometry.of(
                np.uint8, cfg.data_range, cfg.rgb_range)
            if not np.issubdtype(training.dtype, np.integer):
                raise UserError(f"{cfg.model} pre-upsamples integer images; a model trained on float data has no "
                                f"ONNX form here")
            pre_upsample = (cfg.scale, training.white, default_white(training.dtype))
        self.network = UnitRangeNetwork(model.model.cpu().eval(), cfg.rgb_range, clamp, pre_upsample).eval()

    def export(self, size, opset):
        try:
            return export_graph(self.network, self.cfg.n_colors, size, opset)
        except UserError:
            raise
        except Exception as err:  # the exporter fails in many types
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"{self.cfg.model} does not export to ONNX at --opset {opset} with --attention "
                            f"{self.attention}: {reason}") from None

    def runs_at_other_sizes(self, graph, sizes=((29, 35), (40, 24))):
        """Whether a dynamic-size graph gives PyTorch's output (within TOLERANCE) at sizes other than the traced one
        (random inputs)."""
        session = open_session(graph)
        generator = torch.Generator().manual_seed(1)
        for height, width in sizes:
            x = torch.rand(1, self.cfg.n_colors, height, width, generator=generator)
            if not max_difference(session, self.network, x) <= TOLERANCE:
                return False
        return True


def run_session(session, x):
    return session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]


def max_difference(session, reference, x):
    """max |onnxruntime - PyTorch| over the output of x; inf when the shapes differ or the graph fails there."""
    with torch.no_grad():
        expected = reference(x).numpy()
    try:
        got = run_session(session, x)
    except Exception:  # onnxruntime refused the size: a graph that is not right there
        return math.inf
    if got.shape != expected.shape:
        return math.inf
    return float(np.abs(got.astype(np.float64) - expected).max())


