#!/usr/bin/env python3
"""Writes the seed inputs of the safetensors fuzz target into tests/fuzz/corpus/safetensors/.

Small valid files (every dtype, empty and scalar tensors, metadata, padded and unpadded
headers) give libFuzzer a structure to mutate. Run from anywhere; the output is committed."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "safetensors")
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
            "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape); data bytes are 0, 1, 2, ... (BOOL: 0/1)."""
    header, data = {}, b""
    for name, dtype, shape in tensors:
        numel = 1
        for d in shape:
            numel *= d
        n = numel * ITEMSIZE[dtype]
        raw = bytes((i % 2) if dtype == "BOOL" else (i % 251) for i in range(n))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


SEEDS = {
    "empty_header": safetensors([]),
    "one_f32": safetensors([("w", "F32", [2, 2])]),
    "every_dtype": safetensors([(d.lower(), d, [3]) for d in ITEMSIZE]),
    "scalar_and_empty": safetensors([("s", "I64", []), ("e", "F16", [0, 5])]),
    "metadata": safetensors([("b", "BF16", [2])], {"format": "pt", "step": "10"}),
    "unpadded": safetensors([("x", "U8", [5]), ("y", "BOOL", [3])], pad=False),
    "rank4": safetensors([("conv.weight", "F32", [2, 1, 2, 2]), ("conv.bias", "F32", [2])]),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(blob)
