#!/usr/bin/python3
"""Writes the small .npy fixtures that tests/unit/test_tensor_io.c reads (tests/data/npy/).

Values follow simple formulas the C test recomputes (arange-based), so nothing is hard-coded
twice. Run: /usr/bin/python3 tools/make_npy_fixtures.py  (needs numpy)."""
import os
import numpy as np
from numpy.lib import format as npf

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "npy")


def save(name, arr, version=None):
    with open(os.path.join(OUT, name), "wb") as f:
        npf.write_array(f, arr, version=version, allow_pickle=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    a = np.arange(6)
    # good files: value[i] = formula(i) in C order
    save("f32_2x3.npy", (a.reshape(2, 3) * 0.5 - 1).astype("<f4"))
    save("f64_3.npy", (a[:3] / 3.0).astype("<f8"))
    save("i64_2x2x2.npy", (np.arange(8) * -1000000000000).reshape(2, 2, 2).astype("<i8"))
    save("i32_4.npy", (np.arange(4) * 7 - 10).astype("<i4"))
    save("i8_5.npy", np.array([-128, -1, 0, 1, 127], dtype="|i1"))
    save("u8_1x5.npy", np.array([[0, 1, 128, 254, 255]], dtype="|u1"))
    save("bool_4.npy", np.array([True, False, False, True]))
    save("f32_scalar.npy", np.array(3.25, dtype="<f4"))
    save("f32_0x3.npy", np.zeros((0, 3), dtype="<f4"))
    save("f32_v2.npy", (a.reshape(2, 3) * 0.5 - 1).astype("<f4"), version=(2, 0))
    save("f32_v3.npy", (a.reshape(2, 3) * 0.5 - 1).astype("<f4"), version=(3, 0))
    # bad files
    save("fortran.npy", np.asfortranarray((a.reshape(2, 3) * 0.5 - 1).astype("<f4")))
    save("big_endian.npy", np.arange(3, dtype=">f4"))
    save("complex.npy", np.arange(2, dtype="<c8"))
    save("object.npy", np.array([1, "a"], dtype=object))
    with open(os.path.join(OUT, "f32_2x3.npy"), "rb") as f:
        good = f.read()
    with open(os.path.join(OUT, "truncated.npy"), "wb") as f:
        f.write(good[:-4])
    with open(os.path.join(OUT, "trailing.npy"), "wb") as f:
        f.write(good + b"\0\0\0\0")


if __name__ == "__main__":
    main()
