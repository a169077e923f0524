"""ONNX graphs as files and sessions: the names of a graph's input and output, onnxruntime sessions, the metadata an
export carries (each value JSON text, as QGIS Deepness decodes them with json.loads), and reading a graph from a file.
Used by the exporter (onnx_export.py), by deploy's onnxruntime backend (onnx_backend.py) and by the configuration
(an --onnx file's metadata is one of its layers)."""
import hashlib
import json
from pathlib import Path

import onnx
import onnxruntime as ort
import torch

import bounded
from errors import UserError

INPUT_NAME, OUTPUT_NAME = "input", "output"


# ----------------------------------------------------------------------------------------------- sessions, metadata
def open_session(graph, cpu=True):
    """An onnxruntime session on `graph` (a path, or the bytes of a model) with every graph optimisation, as QGIS
    Deepness opens its models; CUDA when onnxruntime has it and `cpu` is False."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4  # fatal only: errors are raised as exceptions, which callers report in one line
    providers = ["CPUExecutionProvider"]
    if not cpu and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(graph if isinstance(graph, bytes) else str(graph), sess_options=options,
                                    providers=providers)
    except Exception as err:  # onnxruntime's errors (Fail, InvalidGraph, NotImplemented, ...) derive from Exception
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        what = "the exported graph" if isinstance(graph, bytes) else f"--onnx {graph}"
        raise UserError(f"{what}: onnxruntime cannot run it ({reason}); export it again with export_onnx.py") from None


def add_metadata(proto, values):
    """Set `values` ({key: JSON-serialisable value}) as the model's metadata_props, each value as JSON text."""
    existing = {prop.key: prop for prop in proto.metadata_props}
    for key, value in values.items():
        prop = existing.get(key) or proto.metadata_props.add()
        prop.key, prop.value = key, json.dumps(value)


def decode_metadata(raw):
    """{key: value} of a metadata map whose values are JSON text (a value that is not JSON stays a string)."""
    decoded = {}
    for key, text in raw.items():
        try:
            decoded[key] = bounded.loads(text)
        except ValueError:
            decoded[key] = text
    return decoded


def read_graph(path):
    """The ModelProto of an .onnx file; a missing or foreign file is a one-line error naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--onnx {path}: no such file; export one with export_onnx.py")
    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf decode errors come in several types
        raise UserError(f"--onnx {path}: not an ONNX model ({type(err).__name__}); give a file written by "
                        f"export_onnx.py") from None


def read_metadata(path):
    """{key: value} of an .onnx file's metadata (values decoded from JSON text)."""
    return decode_metadata({prop.key: prop.value for prop in read_graph(path).metadata_props})


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def static_dims(session, path):
    """(input shape, output shape) of a one-input one-output session, symbolic dimensions as None; the interface
    export_onnx.py writes (one float32 input named INPUT_NAME, one float32 output named OUTPUT_NAME) is checked once,
    when the file opens, not per input."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UserError(f"the ONNX model has {len(inputs)} inputs and {len(outputs)} outputs; a super-resolution "
                        f"graph has one of each")
    for node, name in ((inputs[0], INPUT_NAME), (outputs[0], OUTPUT_NAME)):
        if node.name != name or node.type != "tensor(float)":
            raise UserError(f"--onnx {path}: its {name} is {node.name!r} of {node.type}, not {name!r} of "
                            f"tensor(float) as export_onnx.py writes it; export the model with export_onnx.py")
    shapes = tuple([d if isinstance(d, int) else None for d in node.shape] for node in (inputs[0], outputs[0]))
    if any(len(shape) != 4 for shape in shapes):
        raise UserError(f"the ONNX model's input and output are {inputs[0].shape} and {outputs[0].shape}; a "
                        f"super-resolution graph takes and returns N x C x H x W")
    return shapes



def session_device(session):
    return torch.device("cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu")

