"""int4 probe (2026-12-08): LiteRT latency of the fully binary model's int4 file against its
int8, float and packed_int8 files, side by side at 1 and 2 threads (median of 100 runs, batch 1,
three rounds).

Needs the files of `make export-tflite MODEL=bireal_20_2-cifar10-1bit`. Printed on the 2-core
AMX Xeon (training paused): int8 0.62-0.64 ms, int4 2.60-2.80 ms at 1 thread (4.2-4.4x); int8
0.67-0.69 ms, int4 2.23-2.35 ms at 2 threads (3.3-3.5x). LiteRT runs INT4 filters on its builtin
kernels, not XNNPACK.

    .venv/bin/python tools/probes/int4_latency.py   (from the repository root, ../shared beside it)
"""
import os

os.environ["KERAS_ONEBIT_QUIET"] = "1"
import keras_onebit  # noqa: E402,F401  (quiet start before TensorFlow)

# isort: split
import pathlib  # noqa: E402

from keras_onebit import data  # noqa: E402
from keras_onebit.export import report  # noqa: E402

folder = pathlib.Path("export/bireal_20_2-cifar10-1bit")
formats = ("int8", "int4", "packed_int8", "float")
files = {f: (folder / f"bireal_20_2-cifar10-1bit_{f}.tflite").read_bytes() for f in formats}
image = data.load_dataset("cifar10")["x_test"][0].astype("float32")
for round_ in range(3):
    for threads in (1, 2):
        ms = {f: report.latency_ms(data, image, threads, 100) for f, data in files.items()}
        print(f"round {round_} threads {threads}: "
              + ", ".join(f"{f} {v:.2f} ms" for f, v in ms.items())
              + f"; int4/int8 {ms['int4'] / ms['int8']:.2f}x", flush=True)
