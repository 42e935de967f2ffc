#!/usr/bin/env python3
"""Writes seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/.

safetensors: small valid files (every dtype, empty and scalar tensors, metadata, padded and
unpadded headers). idx: small IDX image and label files, raw and gzip. (The shard seeds are real
shards written by `umbra pack idx` from the idx seeds; see tests/fuzz/corpus/shard/README.)
They give libFuzzer a structure to mutate. Run from anywhere; the output is committed."""
import gzip
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



def idx(dims, type_code=0x08):
    """An IDX file of unsigned bytes 0, 1, 2, ... with the given dimensions."""
    n = 1
    for d in dims:
        n *= d
    head = struct.pack(">HBB", 0, type_code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    return head + bytes(i % 256 for i in range(n))


IDX_SEEDS = {
    "images_3x28x28.idx": idx([3, 28, 28]),
    "labels_3.idx": idx([3]),
    "images_2x4x4.idx.gz": gzip.compress(idx([2, 4, 4]), mtime=0),
    "labels_empty.idx": idx([0]),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
            f.write(blob)
    idx_out = os.path.join(HERE, "corpus", "idx")
    os.makedirs(idx_out, exist_ok=True)
    for name, blob in IDX_SEEDS.items():
        with open(os.path.join(idx_out, name), "wb") as f:
            f.write(blob)
