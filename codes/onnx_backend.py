"""ONNX graphs at run time: onnxruntime sessions, the metadata the exports carry, and deploy's --backend onnxruntime.

The graphs export_onnx.py writes take one input `input`, N x C x H x W float32 holding file value / white level ([0, 1]
for data within white), and return one output `output`, N x C x sH x sW in the same units. N is dynamic; H and W are
fixed at a tile (what QGIS Deepness needs) or dynamic (export_onnx.py --dynamic_shape). Each metadata value is JSON
text (Deepness decodes them with json.loads).

`OnnxModel` implements deploy.DeployBackend as model.Model does (scale, device, tile_plan, inference_fn, ...), so
deploy's tiling, nodata, GeoTIFF and manifest pipeline runs unchanged, with an onnxruntime session call as the
forward function:
- `--onnx FILE` runs that file. Its metadata gives the model, scale, bands and white level (no checkpoint is read);
  a graph fixed at a tile runs every tile at that size, smaller images padded to it (like TransENet's tile plan).
- Without --onnx, the checkpoint is exported on the fly into a temporary folder: one graph with a dynamic size where
  the network exports one that onnxruntime runs exactly at two other sizes, else one graph per input size met
  (BICUBIC: its resize matrices are constants of the size). The tile plan is the PyTorch backend's.
"""
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import torch

import tiling
from errors import UserError
from model import forward_x8, known_network_spec
from onnx_graph import INPUT_NAME, OUTPUT_NAME, open_session, session_device, sha256_of, static_dims


# ---------------------------------------------------------------------------------------------- deploy: the model
class OnnxModel:
    """The network deploy runs through onnxruntime (see the module docstring). `graphs(h, w)` gives the session for an
    input of h x w LR pixels."""

    def __init__(self, cfg, graphs, plan, device, record):
        self.scale = cfg.scale
        self.network_range = 1.0  # the graph takes file value / white level: full white is 1
        self.self_ensemble = cfg.self_ensemble
        self.graphs = graphs
        self.tile_plan = plan
        self.device = device
        self._record = record
        # deploy.DeployBackend: said once, instead of failing; a graph runs in fp32
        self.precision_note = (None if cfg.precision == "fp32" else
                               f"note: --precision {cfg.precision} applies to the torch backend only; onnxruntime "
                               f"runs fp32")

    def eval(self):
        return self  # model.Model's interface: there is nothing to switch

    def record(self):
        """The manifest's record of the backend and the ONNX graph(s)."""
        return {"backend": "onnxruntime", "onnx": self._record()}

    def inference_fn(self, self_ensemble=None, radiometry=None):
        """A function from an LR batch in [0, 1] to its float32 SR on the CPU; the x8 ensemble when `self_ensemble`
        (default: --self_ensemble). `radiometry` is model.Model's interface: a graph does its own pre-upsampling."""
        ensemble = self.self_ensemble if self_ensemble is None else self_ensemble

        def run(t):
            return forward_x8(t, self.forward) if ensemble else self.forward(t)
        return run

    def forward(self, x):
        array = x.detach().float().cpu().contiguous().numpy()
        height, width = array.shape[2:]
        try:
            out = self.graphs(height, width).run([OUTPUT_NAME], {INPUT_NAME: array})[0]
        except UserError:
            raise
        except Exception as err:  # onnxruntime's errors derive from Exception only
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise UserError(f"onnxruntime failed on a {height}x{width} input: {reason}") from None
        if out.shape[-2:] != (height * self.scale, width * self.scale):
            raise UserError(f"the ONNX graph returned {out.shape[-2]}x{out.shape[-1]} for a {height}x{width} input, "
                            f"not x{self.scale}: pass the --scale it was exported for")
        if not np.isfinite(out).all():  # finite inputs (nodata takes its band's mean): a damaged graph
            raise UserError(f"the ONNX graph returned NaN or Inf values for a {height}x{width} input: the file is "
                            f"damaged; export the model again with export_onnx.py")
        return torch.from_numpy(out)


def deploy_model(cfg, torch_model=None):
    """The OnnxModel for `cfg`: the --onnx file, or `torch_model` (a model.Model, which the exporter takes over)
    exported on the fly."""
    if cfg.onnx:
        return from_file(cfg)
    return exported(cfg, torch_model)


def from_file(cfg):
    path = Path(cfg.onnx).resolve()
    session = open_session(path, cfg.cpu)
    meta = cfg.onnx_metadata  # read and checked once, by config.resolve
    (n, c, h, w), (_, out_c, out_h, _) = static_dims(session, path)
    for side, bands in (("takes", c), ("returns", out_c)):
        if bands is not None and bands != cfg.n_colors:
            raise UserError(f"--onnx {path} {side} {bands} bands, not {cfg.n_colors} (--n_colors): export the model "
                            f"again with export_onnx.py")
    if h is None and w is None:
        plan, shape = dynamic_file_plan(cfg, meta), "dynamic"
    else:
        plan, shape = fixed_file_plan(cfg, path, meta, h, w, out_h), f"fixed {h}x{w}"
    record = {"file": str(path), "sha256": sha256_of(path), "input_size": shape,
              "batch": "dynamic" if n is None else n, "model": meta.get("model"),
              "checkpoint_sha256": meta.get("checkpoint_sha256"), "providers": session.get_providers()}
    return OnnxModel(cfg, lambda height, width: session, plan, session_device(session), lambda: record)


MAX_TILE_MULTIPLE = 256  # the largest tile multiple an export may record (an attention window)


def file_overlap(cfg, meta):
    """--tile_overlap, else deploy's overlap recorded at export (None: the network's default)."""
    return cfg.tile_overlap if cfg.tile_overlap is not None else meta.get("tile_overlap_px")


def dynamic_file_plan(cfg, meta):
    """Deploy's plan for a graph of any size: --tile, else the deploy tile recorded at export, in multiples of the
    network's window."""
    tile = cfg.tile if cfg.tile is not None else meta.get("deploy_tile")
    multiple = int(meta.get("tile_multiple", 1))
    if not 1 <= multiple <= MAX_TILE_MULTIPLE:  # an attention window (SwinIR's 8, ConvFormerSR's 8) or 1
        raise UserError(f"--onnx {cfg.onnx} (metadata 'tile_multiple') says tiles are multiples of {multiple}, not "
                        f"an attention window of 1 to {MAX_TILE_MULTIPLE}: the file is damaged; export it again with "
                        f"export_onnx.py")
    return tiling.plan_for(known_network_spec(cfg.model), tile, file_overlap(cfg, meta), multiple=multiple,
                           model_name=cfg.model)


def fixed_file_plan(cfg, path, meta, h, w, out_h):
    """A graph of one input size runs every tile at that size (smaller images padded to it, as TransENet's plan)."""
    if h != w:
        raise UserError(f"--onnx {path} takes {h}x{w} inputs; deploy tiles are square: export with a square --tile or "
                        f"with --dynamic_shape")
    if out_h is not None and out_h != h * cfg.scale:
        raise UserError(f"--onnx {path} is a x{out_h // h} graph, not x{cfg.scale}: drop --scale or export again")
    if cfg.tile not in (None, h):
        raise UserError(f"--tile {cfg.tile}: --onnx {path} takes inputs of exactly {h}x{h} LR pixels (it was exported "
                        f"at that tile); drop --tile, or export with --tile {cfg.tile} or --dynamic_shape")
    tiling.check_tile_memory(h, cfg.n_colors, cfg.scale, f"--onnx {path}: its fixed input size",
                             "export it again with a smaller --tile, or with --dynamic_shape")
    return tiling.plan_for(known_network_spec(cfg.model), h, file_overlap(cfg, meta), fixed_size=h,
                           model_name=cfg.model)



class ExportedGraphs:
    """The checkpoint's network exported into a temporary folder: one dynamic-size graph when the network gives a
    correct one, else one graph per input size, exported when that size first comes."""

    def __init__(self, exporter, opset, cpu, fixed_size=None):
        self.exporter, self.opset, self.cpu = exporter, opset, cpu
        self.folder = tempfile.TemporaryDirectory(prefix="rssr-onnx-")  # removed with this object, or at exit
        self.sessions = {}  # (h, w) -> session; key None: the dynamic graph
        self.digests = {}
        if fixed_size:
            self.mode = f"fixed {fixed_size}x{fixed_size}"
            self._add((fixed_size, fixed_size), exporter.export((fixed_size, fixed_size), opset))
        else:
            graph = exporter.export(None, opset)
            dynamic = exporter.runs_at_other_sizes(graph)
            self.mode = "dynamic" if dynamic else "per input size"
            if dynamic:
                self._add(None, graph)

    def _add(self, key, graph):
        name = "dynamic" if key is None else f"{key[0]}x{key[1]}"
        path = Path(self.folder.name) / f"{name}.onnx"
        path.write_bytes(graph)
        self.digests[name] = hashlib.sha256(graph).hexdigest()
        self.sessions[key] = open_session(path, self.cpu)
        return self.sessions[key]

    def __call__(self, height, width):
        if None in self.sessions:
            return self.sessions[None]
        session = self.sessions.get((height, width))
        if session is None:
            if self.mode.startswith("fixed"):
                raise UserError(f"internal: a {height}x{width} tile for a graph of {self.mode} size")
            session = self._add((height, width), self.exporter.export((height, width), self.opset))
        return session

    def device(self):
        return session_device(next(iter(self.sessions.values()))) if self.sessions else torch.device("cpu")

    def record(self):
        return {"file": None, "exported_on_the_fly": True, "input_size": self.mode, "opset": self.opset,
                "attention": self.exporter.attention, "graphs_sha256": dict(self.digests)}


def exported(cfg, torch_model):
    import onnx_export  # torch.onnx: only needed for exporting

    exporter = onnx_export.Exporter(cfg, torch_model)
    plan = torch_model.tile_plan
    graphs = ExportedGraphs(exporter, cfg.opset, cfg.cpu, fixed_size=plan.tile if plan.fixed else None)
    return OnnxModel(cfg, graphs, plan, graphs.device(), graphs.record)
