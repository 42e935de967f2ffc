"""Writes the first N training and M test images of Fashion-MNIST as the four .gz IDX files that
`umbra pack fashion-mnist --source DIR` reads, so multi-rank training tests run on a small set.

    tiny_fmnist.py SOURCE_DIR OUT_DIR N_TRAIN N_TEST
"""
import gzip
import os
import struct
import sys


def cut(src, dst, count):
    with gzip.open(src, "rb") as f:
        blob = f.read()
    magic, total = struct.unpack(">II", blob[:8])
    dims = magic & 0xFF
    if count > total:
        raise SystemExit(f"{src}: holds {total} items, {count} asked for")
    shape = struct.unpack(">" + "I" * (dims - 1), blob[8:4 + 4 * dims])
    item = 1
    for d in shape:
        item *= d
    header = 4 + 4 * dims
    out = struct.pack(">II", magic, count) + blob[8:header] + blob[header:header + count * item]
    with gzip.open(dst, "wb", compresslevel=1) as f:
        f.write(out)


def main():
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    src, out, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    os.makedirs(out, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
            name = f"{prefix}-{kind}.gz"
            cut(os.path.join(src, name), os.path.join(out, name), n)


if __name__ == "__main__":
    main()
