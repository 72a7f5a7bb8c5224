"""New weights into an existing OpenVINO IR: a retrained student without a new conversion.

Every SIKeD iteration trains the same architecture again, so its OpenVINO IR has the same graph
(``openvino_model.xml``) and differs only in the weights that ``openvino_model.bin`` holds. In a
float32 conversion each weight tensor is stored there verbatim (the bytes of the float32 tensor,
whatever shape the graph's ``Const`` gives it), beside a few hundred bytes of constants of the
graph itself (shapes, axes, scalars). This module finds that layout once, from one real
conversion and the weights it was converted from (:func:`find_layout`), and writes the ``.bin``
of another model of the same architecture from its weights alone (:func:`write_weights`):
seconds instead of a conversion's half minute.

A layout is only trusted when it accounts for everything: the ``Const`` regions tile the file,
every weight tensor is found exactly once, byte for byte, and what is left is a few small
constants (at most :data:`MAX_OTHER_BYTES`) that do not come from any weight. Anything else (a
weight folded with another constant, a quantized or float16 conversion, two regions a weight
could be) returns the reason instead of a layout, and the caller converts as before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: bytes of constants that are no weight a layout may carry over from its conversion
MAX_OTHER_BYTES = 4096
LAYOUT_FORMAT = 1
#: files of a model directory that hold weights (everything else describes the model)
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".pt", ".pth", ".gguf")


@dataclass(frozen=True)
class Region:
    """A byte range of the IR's ``.bin`` and the ``Const`` layers that read it."""

    offset: int
    size: int
    element_type: str
    names: tuple[str, ...]


def const_regions(xml_text: str) -> list[Region]:
    """The distinct byte ranges that the ``Const`` layers of an IR read, by offset.

    >>> xml = '''<net><layers>
    ... <layer id="1" name="self.w" type="Const"><data element_type="f32" shape="2" offset="8"
    ...  size="8"/></layer>
    ... <layer id="2" name="c0" type="Const"><data element_type="i64" shape="" offset="0"
    ...  size="8"/></layer>
    ... <layer id="3" name="c1" type="Const"><data element_type="i64" shape="1" offset="0"
    ...  size="8"/></layer>
    ... <layer id="4" name="add" type="Add"/></layers></net>'''
    >>> [(r.offset, r.size, r.names) for r in const_regions(xml)]
    [(0, 8, ('c0', 'c1')), (8, 8, ('self.w',))]
    """
    found: dict[tuple[int, int], tuple[str, list[str]]] = {}
    for layer in ET.fromstring(xml_text).iter("layer"):
        if layer.get("type") != "Const":
            continue
        data = layer.find("data")
        if data is None or data.get("offset") is None:
            continue
        key = (int(data.get("offset", 0)), int(data.get("size", 0)))
        etype = data.get("element_type", "")
        prev = found.setdefault(key, (etype, []))
        if prev[0] != etype:
            found[key] = ("mixed", prev[1])
        found[key][1].append(layer.get("name", ""))
    return [Region(o, s, t, tuple(n)) for (o, s), (t, n) in sorted(found.items())]


def _head(b: bytes | memoryview) -> tuple[int, bytes]:
    return len(b), hashlib.sha1(bytes(b[:256])).digest()


def find_layout(
    xml_text: str, weights_bin: bytes | memoryview, tensors: dict[str, bytes]
) -> dict[str, Any] | str:
    """Where each weight lies in a float32 IR's ``.bin``, or why that cannot be relied on.

    ``tensors`` maps each weight's name to its float32 bytes (C order). The layout lists every
    region of the file in order, each either ``{"param": name}`` or ``{"bytes": base64}`` (a
    constant of the graph, kept as it is).

    >>> import struct
    >>> xml = '''<net><layers>
    ... <layer name="c" type="Const"><data element_type="i64" offset="0" size="8"/></layer>
    ... <layer name="self.a" type="Const"><data element_type="f32" offset="8" size="8"/></layer>
    ... </layers></net>'''
    >>> a = struct.pack("<2f", 1.5, 2.5)
    >>> layout = find_layout(xml, struct.pack("<q", 7) + a, {"a": a})
    >>> [sorted(r) for r in layout["regions"]]
    [['bytes', 'offset', 'size'], ['offset', 'param', 'size']]
    >>> find_layout(xml, struct.pack("<q", 7) + a, {"a": a, "b": a})
    "weight b: no region of the IR holds its bytes (or another weight's region does)"
    """
    size = len(weights_bin)
    regions = const_regions(xml_text)
    at = 0
    for r in regions:
        if r.offset != at:
            return f"the Const regions do not tile the weights file (at byte {at}: {r.offset})"
        at = r.offset + r.size
    if at != size:
        return f"the Const regions end at byte {at}, the weights file at {size}"
    view = memoryview(weights_bin)
    by_head: dict[tuple[int, bytes], list[Region]] = {}
    for r in regions:
        if r.element_type == "f32":
            by_head.setdefault(_head(view[r.offset : r.offset + r.size]), []).append(r)
    owner: dict[int, str] = {}
    for name, data in tensors.items():
        same = [
            r
            for r in by_head.get(_head(data), [])
            if view[r.offset : r.offset + r.size] == data and r.offset not in owner
        ]
        if len(same) > 1:  # equal bytes in two places: only the layer's name can tell
            same = [r for r in same if f"self.{name}" in r.names]
        if len(same) != 1:
            return f"weight {name}: no region of the IR holds its bytes (or another weight's region does)"
        owner[same[0].offset] = name
    out: list[dict[str, Any]] = []
    other = 0
    for r in regions:
        if r.offset in owner:
            out.append({"offset": r.offset, "size": r.size, "param": owner[r.offset]})
        else:
            other += r.size
            raw = bytes(view[r.offset : r.offset + r.size])
            out.append(
                {"offset": r.offset, "size": r.size, "bytes": base64.b64encode(raw).decode()}
            )
    if other > MAX_OTHER_BYTES:
        return (
            f"{other} bytes of the IR are no weight (more than {MAX_OTHER_BYTES}): "
            "a weight may have been folded into another constant"
        )
    return {"format": LAYOUT_FORMAT, "size": size, "regions": out}


def write_weights(layout: dict[str, Any], tensors: dict[str, bytes], path: Path) -> None:
    """Write the ``.bin`` of ``layout`` with these weights (float32 bytes by name).

    Raises ValueError when the weights are not the layout's: other names or other sizes.

    >>> import struct, tempfile
    >>> layout = {"format": 1, "size": 12, "regions": [
    ...     {"offset": 0, "size": 4, "bytes": "AQAAAA=="},
    ...     {"offset": 4, "size": 8, "param": "a"}]}
    >>> out = Path(tempfile.mkdtemp()) / "w.bin"
    >>> write_weights(layout, {"a": struct.pack("<2f", 3.0, 4.0)}, out)
    >>> struct.unpack("<i2f", out.read_bytes())
    (1, 3.0, 4.0)
    """
    params = {r["param"]: r["size"] for r in layout["regions"] if "param" in r}
    if set(params) != set(tensors):
        missing, extra = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
        raise ValueError(f"weights differ from the layout's: missing {missing}, extra {extra}")
    for name, n in params.items():
        if len(tensors[name]) != n:
            raise ValueError(f"weight {name}: {len(tensors[name])} bytes, the layout has {n}")
    with open(path, "wb") as f:
        for r in layout["regions"]:
            f.write(tensors[r["param"]] if "param" in r else base64.b64decode(r["bytes"]))
        if f.tell() != layout["size"]:
            raise ValueError(f"wrote {f.tell()} bytes, the layout has {layout['size']}")


def float32_tensors(model_dir: Path) -> dict[str, bytes]:
    """The float32 bytes (C order) of every tensor in a model directory's safetensors files."""
    import torch
    from safetensors import safe_open

    out: dict[str, bytes] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open is no dict)
                t = st.get_tensor(name).to(torch.float32).contiguous()
                out[name] = t.numpy().tobytes()
    return out


def safetensors_header(path: Path) -> dict[str, Any]:
    """A safetensors file's header: each tensor's dtype and shape (offsets dropped).

    >>> import tempfile, torch
    >>> from safetensors.torch import save_file
    >>> p = Path(tempfile.mkdtemp()) / "m.safetensors"
    >>> save_file({"w": torch.zeros(2, 3)}, str(p))
    >>> safetensors_header(p)
    {'w': ['F32', [2, 3]]}
    """
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > path.stat().st_size:
            raise ValueError(f"{path}: not a safetensors file")
        head = json.loads(f.read(n))
    return {k: [v["dtype"], v["shape"]] for k, v in sorted(head.items()) if k != "__metadata__"}


#: the packages of the converter's environment whose versions shape the graph it writes
CONVERTER_PACKAGES = (
    "optimum",
    "optimum-intel",
    "openvino",
    "openvino-tokenizers",
    "transformers",
    "torch",
)


def converter_versions(converter: str) -> dict[str, str]:
    """Versions of :data:`CONVERTER_PACKAGES` in the environment of the ``optimum-cli`` script
    ``converter``, read from the ``*.dist-info`` directories of that environment (no process is
    started); empty where none is found."""
    root = Path(converter).absolute().parent.parent
    found: dict[str, str] = {}
    for pattern in (
        "lib/python*/site-packages/*.dist-info",
        "lib/python*/dist-packages/*.dist-info",
    ):
        for info in root.glob(pattern):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            name = name.lower().replace("_", "-")
            if name in CONVERTER_PACKAGES:
                found[name] = version
    return dict(sorted(found.items()))


def architecture_key(model_dir: Path, converter: str, flags: Sequence[str] = ()) -> str:
    """What a layout depends on: the model's files other than its weights (config, tokenizer,
    templates), its tensors' names, dtypes and shapes, and the converter (path, mtime, the
    versions of its environment's :data:`CONVERTER_PACKAGES`, and its command-line ``flags``).
    Two models with the same key convert to the same graph."""
    h = hashlib.sha256(f"siked-openvino-layout {LAYOUT_FORMAT}\n".encode())
    conv = Path(converter)
    h.update(f"{conv.resolve()} {conv.stat().st_mtime_ns}\n".encode())
    h.update(json.dumps([list(flags), converter_versions(converter)]).encode() + b"\n")
    for p in sorted(model_dir.iterdir()):
        if not p.is_file():
            continue
        if p.name.endswith(".safetensors"):
            try:
                head = json.dumps(safetensors_header(p))
            except (OSError, ValueError, struct.error):  # not safetensors: never the same key
                head = f"unreadable {p.stat().st_size} {p.stat().st_mtime_ns}"
            h.update(f"{p.name} {head}\n".encode())
        elif not p.name.endswith(WEIGHT_SUFFIXES):
            data = p.read_bytes()
            h.update(f"{p.name} {len(data)}\n".encode() + data)
    return h.hexdigest()[:32]
