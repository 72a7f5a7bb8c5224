"""New weights into a kept OpenVINO graph (siked.engines.openvino_weights): where the weights lie
in a float32 IR, when that layout cannot be trusted, and writing another model's weights file."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from siked.engines.openvino_weights import (
    MAX_OTHER_BYTES,
    architecture_key,
    const_regions,
    converter_versions,
    find_layout,
    float32_tensors,
    write_weights,
)


def f32(*xs: float) -> bytes:
    return struct.pack(f"<{len(xs)}f", *xs)


def ir(consts: list[tuple[str, str, int]], extra: str = "") -> str:
    """An IR's xml with one Const layer per (name, element type, size), laid out in order."""
    layers, at = [], 0
    for i, (name, etype, size) in enumerate(consts):
        layers.append(
            f'<layer id="{i}" name="{name}" type="Const" version="opset1">'
            f'<data element_type="{etype}" shape="" offset="{at}" size="{size}" /></layer>'
        )
        at += size
    return f"<net><layers>{''.join(layers)}{extra}</layers></net>"


SHAPE = struct.pack("<q", 576)
A, B = f32(1, 2, 3), f32(4, 5, 6, 7)
XML = ir([("Constant_1", "i64", 8), ("self.model.a", "f32", 12), ("Constant_7", "f32", 16)])
BIN = SHAPE + A + B  # b was reshaped by the graph: an unnamed Const, the same bytes


def test_every_weight_is_found_once_and_the_rest_is_kept_as_constants() -> None:
    layout = find_layout(XML, BIN, {"model.a": A, "model.b": B})
    assert isinstance(layout, dict)
    assert layout["size"] == len(BIN)
    regions = layout["regions"]
    assert [r.get("param") for r in regions] == [None, "model.a", "model.b"]
    assert base64.b64decode(regions[0]["bytes"]) == SHAPE


def test_the_layout_writes_another_models_weights_where_the_conversion_would(
    tmp_path: Path,
) -> None:
    layout = find_layout(XML, BIN, {"model.a": A, "model.b": B})
    assert isinstance(layout, dict)
    a2, b2 = f32(-1, 0.5, 9), f32(0, 0, 0, 1)
    write_weights(layout, {"model.a": a2, "model.b": b2}, tmp_path / "w.bin")
    assert (tmp_path / "w.bin").read_bytes() == SHAPE + a2 + b2


def test_weights_that_are_not_the_layouts_are_refused(tmp_path: Path) -> None:
    layout = find_layout(XML, BIN, {"model.a": A, "model.b": B})
    assert isinstance(layout, dict)
    with pytest.raises(ValueError, match=r"missing.*model\.b"):
        write_weights(layout, {"model.a": A}, tmp_path / "w.bin")
    with pytest.raises(ValueError, match=r"model\.b: 8 bytes"):
        write_weights(layout, {"model.a": A, "model.b": f32(1, 2)}, tmp_path / "w.bin")


def test_a_weight_the_graph_does_not_hold_verbatim_means_no_layout() -> None:
    # a folded weight (b * 2 stored instead of b): b is nowhere, so nothing can be patched
    folded = SHAPE + A + f32(8, 10, 12, 14)
    why = find_layout(XML, folded, {"model.a": A, "model.b": B})
    assert isinstance(why, str) and "model.b" in why


def test_too_many_bytes_that_are_no_weight_means_no_layout() -> None:
    big = MAX_OTHER_BYTES + 4
    xml = ir([("Constant_1", "f32", big), ("self.model.a", "f32", 12)])
    why = find_layout(xml, bytes(big) + A, {"model.a": A})
    assert isinstance(why, str) and "folded" in why


def test_regions_that_do_not_tile_the_file_mean_no_layout() -> None:
    xml = ir([("self.model.a", "f32", 12)])
    assert "end at byte 12" in str(find_layout(xml, A + b"tail", {"model.a": A}))
    gap = XML.replace('offset="8"', 'offset="9"')
    assert "do not tile" in str(find_layout(gap, BIN, {"model.a": A, "model.b": B}))


def test_equal_weights_are_told_apart_by_name_or_not_at_all() -> None:
    xml = ir([("self.model.x", "f32", 12), ("self.model.y", "f32", 12)])
    layout = find_layout(xml, A + A, {"model.y": A, "model.x": A})  # e.g. norms still at 1.0
    assert isinstance(layout, dict)
    assert [r["param"] for r in layout["regions"]] == ["model.x", "model.y"]
    anonymous = ir([("Constant_1", "f32", 12), ("Constant_2", "f32", 12)])
    assert isinstance(find_layout(anonymous, A + A, {"model.x": A, "model.y": A}), str)


def test_const_regions_are_distinct_ranges_with_every_layer_that_reads_them() -> None:
    xml = ir(
        [("c", "i64", 8)],
        extra='<layer id="9" name="c2" type="Const"><data '
        'element_type="i64" shape="1" offset="0" size="8"/></layer>'
        '<layer id="10" name="p" type="Parameter"><data shape="?" element_type="i64"/>'
        "</layer>",
    )
    regions = const_regions(xml)
    assert [(r.offset, r.size, r.names) for r in regions] == [(0, 8, ("c", "c2"))]


def test_float32_tensors_casts_to_float32_bytes(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file(
        {"w": torch.tensor([1.5, -2.0], dtype=torch.bfloat16)}, str(tmp_path / "m.safetensors")
    )
    assert float32_tensors(tmp_path) == {"w": f32(1.5, -2.0)}


def test_the_architecture_key_follows_config_tokenizer_shapes_and_converter(
    tmp_path: Path,
) -> None:
    import torch
    from safetensors.torch import save_file

    cli = tmp_path / "optimum-cli"
    cli.write_text("#!/bin/sh\n")
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text('{"hidden_size": 4}')
    (m / "tokenizer.json").write_text("{}")
    save_file({"w": torch.zeros(2, 2)}, str(m / "model.safetensors"))
    key = architecture_key(m, str(cli))
    save_file({"w": torch.ones(2, 2)}, str(m / "model.safetensors"))  # retrained: same graph
    assert architecture_key(m, str(cli)) == key
    save_file({"w": torch.ones(2, 3)}, str(m / "model.safetensors"))
    assert architecture_key(m, str(cli)) != key
    save_file({"w": torch.ones(2, 2)}, str(m / "model.safetensors"))
    (m / "tokenizer.json").write_text('{"added": 1}')
    assert architecture_key(m, str(cli)) != key
    (m / "tokenizer.json").write_text("{}")
    assert architecture_key(m, str(cli)) == key
    cli2 = tmp_path / "other-cli"
    cli2.write_text("#!/bin/sh\n")
    assert architecture_key(m, str(cli2)) != key
    assert architecture_key(m, str(cli), ["--weight-format", "int8"]) != key  # other flags


def test_the_architecture_key_follows_the_converters_versions(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    cli = env / "bin" / "optimum-cli"
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\n")
    site = env / "lib" / "python3.11" / "site-packages"
    for dist in ("optimum_intel-2.2.0", "openvino-2026.4.1", "requests-2.32.0"):
        (site / f"{dist}.dist-info").mkdir(parents=True)
    assert converter_versions(str(cli)) == {"openvino": "2026.4.1", "optimum-intel": "2.2.0"}
    m = tmp_path / "m"
    m.mkdir()
    (m / "config.json").write_text("{}")
    key = architecture_key(m, str(cli))
    (site / "openvino-2026.4.1.dist-info").rename(site / "openvino-2026.5.0.dist-info")
    assert architecture_key(m, str(cli)) != key
