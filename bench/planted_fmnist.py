"""Writes a Fashion-MNIST training set with planted duplicates, as the four .gz IDX files that
`umbra pack fashion-mnist --source DIR` reads (bench/planted_duplicates_demo.sh).

    planted_fmnist.py SOURCE_DIR OUT_DIR N_BASE N_PLANTED COPIES

Training split: the first N_BASE training images, then N_PLANTED further training images (one per
class in turn, taken after the first N_BASE so they are not already in the base set) each repeated
COPIES times. The copies are interleaved with the base images at evenly spaced positions (the
trainer's sampler shuffles anyway; this keeps every shard mixed). Test split: all 10,000 test images.
Writes planted.json: the planted images' positions in the source file and the positions of their
copies in the new training split (the ids `umbra pack` gives them, as it numbers images in order).
"""
import gzip
import json
import os
import struct
import sys


def read_idx(path):
    with gzip.open(path, "rb") as f:
        blob = f.read()
    magic, count = struct.unpack(">II", blob[:8])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * (dims - 1), blob[8:4 + 4 * dims])
    item = 1
    for d in shape:
        item *= d
    header = 4 + 4 * dims
    return blob[:header], count, [blob[header + i * item:header + (i + 1) * item] for i in range(count)]


def write_idx(path, header, items):
    out = header[:4] + struct.pack(">I", len(items)) + header[8:] + b"".join(items)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(out)


def main():
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    n_base, n_planted, copies = (int(a) for a in sys.argv[3:6])
    os.makedirs(out, exist_ok=True)
    img_h, n_img, images = read_idx(os.path.join(src, "train-images-idx3-ubyte.gz"))
    lab_h, n_lab, labels = read_idx(os.path.join(src, "train-labels-idx1-ubyte.gz"))
    if n_img != n_lab or n_base + n_planted > n_img:
        raise SystemExit(f"{src}: {n_img} training images; {n_base} + {n_planted} asked for")
    # One planted image per class in turn, from after the base set, so each is new.
    planted, want = [], 0
    for i in range(n_base, n_img):
        if len(planted) == n_planted:
            break
        if labels[i][0] == want % 10:
            planted.append(i)
            want += 1
    base = list(range(n_base))
    copies_list = [p for p in planted for _ in range(copies)]
    order, total = [], n_base + len(copies_list)
    # Interleave: copy c goes after base position floor(c * n_base / len(copies)).
    ci = 0
    for b in base:
        order.append(b)
        while ci < len(copies_list) and ci * n_base // len(copies_list) <= b:
            order.append(copies_list[ci])
            ci += 1
    order.extend(copies_list[ci:])
    assert len(order) == total
    write_idx(os.path.join(out, "train-images-idx3-ubyte.gz"), img_h, [images[i] for i in order])
    write_idx(os.path.join(out, "train-labels-idx1-ubyte.gz"), lab_h, [labels[i] for i in order])
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        name = f"t10k-{kind}.gz"
        with open(os.path.join(src, name), "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
    record = {
        "base_images": n_base,
        "copies": copies,
        "planted_source_positions": planted,
        "planted_labels": [labels[p][0] for p in planted],
        "copy_positions": {str(p): [k for k, o in enumerate(order) if o == p] for p in planted},
        "training_images": total,
    }
    with open(os.path.join(out, "planted.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"planted_fmnist: {n_base} base + {len(planted)} planted x {copies} = {total} training images")


if __name__ == "__main__":
    main()
