#!/usr/bin/env python3
"""Independent safetensors reader and writer for Umbra's tests: numpy + json + struct only,
written from the format's specification (https://github.com/huggingface/safetensors):

    8-byte little-endian u64 N | N bytes of UTF-8 JSON | data section
    JSON: {"name": {"dtype": D, "shape": [..], "data_offsets": [begin, end]}, ...,
           "__metadata__": {str: str}}   (offsets relative to the data section)

Usage:
    read_safetensors.py FILE           validate FILE and print its content as JSON on stdout:
                                       {"metadata": {...}, "header_bytes": N,
                                        "tensors": {name: {"dtype", "shape", "values"}}}
                                       values are the elements in row-major order (floats, ints
                                       or bools). Exit status 1 with a message if FILE breaks
                                       the spec.
    read_safetensors.py --write FILE   write the reference file described in reference_tensors()
                                       (laid out in reverse name order, header not padded).
"""
import json
import struct
import sys

import numpy as np

DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # decoded by hand below; numpy has no bfloat16
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}


def fail(message):
    sys.stderr.write("read_safetensors.py: " + message + "\n")
    sys.exit(1)


def decode(dtype, raw, shape):
    array = np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape)
    if dtype == "BF16":
        # bfloat16 is the top half of a float32.
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype == "BOOL":
        if np.any(array > 1):
            fail("BOOL tensor holds bytes other than 0 and 1")
        return array.astype(bool)
    return array


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail("header length %d exceeds the file" % n)
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    if not isinstance(header, dict):
        fail("header is not a JSON object")
    data = blob[8 + n :]
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        fail("__metadata__ must map strings to strings")

    spans = []
    tensors = {}
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            fail("tensor %r: unknown dtype %r" % (name, dtype))
        if any((not isinstance(d, int)) or d < 0 for d in shape):
            fail("tensor %r: bad shape %r" % (name, shape))
        numel = int(np.prod(shape, dtype=object)) if shape else 1
        if end - begin != numel * DTYPES[dtype].itemsize:
            fail("tensor %r: %d bytes for shape %r of %s" % (name, end - begin, shape, dtype))
        if not 0 <= begin <= end <= len(data):
            fail("tensor %r: offsets [%d, %d] outside the data section" % (name, begin, end))
        spans.append((begin, end, name))
        values = decode(dtype, data[begin:end], shape)
        tensors[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "values": values.reshape(-1).tolist(),
        }
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            fail("tensor %r starts at %d, expected %d (gap or overlap)" % (name, begin, position))
        position = end
    if position != len(data):
        fail("tensors cover %d of %d data bytes" % (position, len(data)))
    return {"metadata": metadata, "header_bytes": n, "tensors": tensors}


def reference_tensors():
    """Tensors of --write; Umbra's test rebuilds the same values with torch.

    Each is (arange(numel) * scale + shift) cast to its dtype, reshaped to its shape."""
    return [
        ("a_f64", "F64", [2, 3], 0.25, -1.0),
        ("b_f32", "F32", [3, 2], -1.5, 2.0),
        ("c_f16", "F16", [5], 0.5, -1.0),
        ("d_bf16", "BF16", [2, 2], 2.0, -3.0),
        ("e_i64", "I64", [4], 1 << 40, -(1 << 41)),
        ("f_i32", "I32", [2, 2], 100000, -150000),
        ("g_i16", "I16", [3], 1000, -1000),
        ("h_i8", "I8", [4], 50, -100),
        ("i_u8", "U8", [2, 3], 51, 0),
        ("j_bool", "BOOL", [5], 1, 0),  # arange % 2 below
        ("k_empty", "F32", [0, 4], 1.0, 0.0),
        ("l_scalar", "I32", [], 1, 7),
    ]


def reference_values(dtype, shape, scale, shift):
    numel = int(np.prod(shape)) if shape else 1
    x = np.arange(numel, dtype=np.float64) * scale + shift
    if dtype == "BOOL":
        return (np.arange(numel) % 2).astype(np.uint8)
    if dtype == "BF16":
        # All reference values are exact in bfloat16, so truncation is exact rounding.
        return (x.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
    if dtype.startswith("I") or dtype == "U8":
        x = np.arange(numel, dtype=np.int64) * int(scale) + int(shift)
    return x.astype(DTYPES[dtype])


def write(path):
    entries = reference_tensors()
    header = {"__metadata__": {"format": "pt", "writer": "read_safetensors.py"}}
    chunks = []
    offset = 0
    for name, dtype, shape, scale, shift in reversed(entries):
        raw = reference_values(dtype, shape, scale, shift).tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        write(sys.argv[2])
    elif len(sys.argv) == 2:
        json.dump(read(sys.argv[1]), sys.stdout)
        sys.stdout.write("\n")
    else:
        fail("usage: read_safetensors.py FILE | --write FILE")


if __name__ == "__main__":
    main()
