"""`make firmware`: an exported model as Cortex-M firmware, run under qemu-system-arm.

    python firmware/run.py --tflm_src ../tflite-micro [--model default] [--out export/]
        [--cores cortex-m4,cortex-m4+fp,cortex-m7] [--kernels reference,cmsis_nn]
        [--formats micro,int8]

For every core, kernel set and format: builds TFLite Micro (TARGET=cortex_m_qemu; the
Cortex-M4F, cortex-m4+fp, TARGET=cortex_m_generic with hard float), links
examples/micro_main.cc with the model's C array and firmware/startup.c into a bare-metal
image (firmware/mps2.ld), runs it on qemu's MPS2 board for that core with the gradient image
and CIFAR-10 test images 0-4, counts the instructions of each inference (firmware/icount.c),
compares every output with tflite-micro's Python interpreter bit for bit, and writes
export/<model>/firmware/report.json and report.md (firmware/report.py). Missing tools or
sources stop it with one line saying what to install.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
sys.path.insert(0, str(FIRMWARE))
import report as firmware_report  # noqa: E402  (firmware/report.py, next to this file)

# The tflite-micro commit and the downloads its Makefile pins there, as checked on 2026-12-06.
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
DOWNLOADS = (
    ("flatbuffers", "google/flatbuffers v25.9.23 (with tflite-micro's flatbuffers.patch)"),
    ("gemmlowp", "google/gemmlowp 719139ce755a0f31cbf1c37f7f98adcc7fc9f425"),
    ("ruy", "google/ruy d37128311b445e758136b8602d1bbd2a755e115d"),
    ("kissfft", "mborgerding/kissfft v130 (with third_party/kissfft/kissfft.patch)"),
    ("pigweed", "an empty folder (the library build does not use pigweed)"),
    ("gcc_embedded/bin", "an empty folder (the Debian toolchain on the PATH is used)"),
    ("cmsis", "ARM-software/CMSIS_6 5782d6f8057906d360f4b95ec08a2354afe5c9b9"),
    ("cmsis/Cortex_DFP", "ARM-software/Cortex_DFP c2c70a97a20fb355815e2ead3d4a40e35a4a3cdf"),
    ("cmsis_nn", "ARM-software/CMSIS-NN 4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"),
)
DOWNLOADS_DIR = "tensorflow/lite/micro/tools/make/downloads"
TOOLS = (
    ("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
    ("arm-none-eabi-g++", "gcc-arm-none-eabi"),
    ("arm-none-eabi-size", "binutils-arm-none-eabi"),
    ("arm-none-eabi-nm", "binutils-arm-none-eabi"),
    ("qemu-system-arm", "qemu-system-arm"),
    ("cc", "gcc"),
    ("make", "make"),
)
# Per core: the qemu board, its linker script (firmware/), and the tflite-micro Makefile target the
# library is built with. cortex_m_qemu compiles with -mfloat-abi=soft, so float operators run in
# software; "cortex-m4+fp" is the Cortex-M4F (nRF52840, STM32F4): cortex_m_generic's hard-float
# build (FPv4-SP) on the same board (qemu's Cortex-M4 has the FPU). No Cortex-M55 (qemu's
# mps3-an547): cortex_m_qemu's soft float turns its MVE (Helium) off, and with cortex_m_generic
# (hard float, MVE on) Debian's arm-none-eabi-gcc 12.2 emits a conditional `vcvtne.f32.s32` its
# assembler rejects (tflite-micro's resize_nearest_neighbor.cc at -O2; checked 2026-12-06).
CORES = {
    "cortex-m4": ("mps2-an386", "mps2.ld", "cortex_m_qemu"),
    "cortex-m4+fp": ("mps2-an386", "mps2.ld", "cortex_m_generic"),
    "cortex-m7": ("mps2-an500", "mps2.ld", "cortex_m_qemu"),
}
KERNELS = ("reference", "cmsis_nn")
FORMATS = ("micro", "int8")
SEMIHOSTING = "--specs=rdimon.specs"  # newlib's semihosting: files, output, exit via qemu
BUILD_TYPE = "release_with_logs"  # tflite-micro's build for benchmarks: NDEBUG, logs kept
TEST_IMAGES = 5
RUN_TIMEOUT = 1800  # seconds per qemu run (the reference kernels are slow)


class FirmwareError(Exception):
    """Something `make firmware` needs is missing or went wrong: one line for the user."""


def log(message):
    print(message, flush=True)


def tool_path(src=None):
    """The PATH of every tool run here: tflite-micro's downloaded Arm toolchain first, when there
    is one (as its Makefile puts it), then this Python's folder (the Makefile runs python3 with
    numpy and Pillow), then the system's."""
    folders = [str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]
    if src is not None:
        folders.insert(0, str(pathlib.Path(src) / DOWNLOADS_DIR / "gcc_embedded" / "bin"))
    return os.pathsep.join(folders)


def check_tools(which=shutil.which):
    """Raises FirmwareError naming every missing tool and the Debian package that has it."""
    missing = [(tool, package) for tool, package in TOOLS if which(tool) is None]
    if not missing:
        _check_libraries()
        return
    packages = sorted({package for _, package in missing})
    raise FirmwareError(f"missing {', '.join(tool for tool, _ in missing)}: "
                        f"apt-get install {' '.join(packages)}")


def _check_libraries():
    for library, package in (("librdimon.a", "libnewlib-arm-none-eabi"),
                             ("libstdc++.a", "libstdc++-arm-none-eabi-newlib")):
        found = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb",
                                f"-print-file-name={library}"], capture_output=True, text=True)
        if not os.path.isabs(found.stdout.strip()):
            raise FirmwareError(f"missing {library} for arm-none-eabi: apt-get install {package}")


def check_sources(tflm_src):
    """Raises FirmwareError unless `tflm_src` is a tflite-micro checkout with its downloads."""
    how = ("docs/DEPLOY_MICRO.md, 'Firmware', says how to place it")
    if not tflm_src:
        raise FirmwareError(f"give TFLM_SRC=<a tflite-micro checkout> (commit {TFLM_COMMIT[:8]} "
                            f"with its downloads in place; {how})")
    src = pathlib.Path(tflm_src)
    if not (src / "tensorflow/lite/micro/tools/make/Makefile").is_file():
        raise FirmwareError(f"{src} is not a tflite-micro checkout (no "
                            f"tensorflow/lite/micro/tools/make/Makefile); {how}")
    downloads = src / DOWNLOADS_DIR
    for folder, what in DOWNLOADS:
        if not (downloads / folder).is_dir():
            raise FirmwareError(f"{downloads / folder} is missing: place {what} there "
                                f"(no network: `make firmware` never downloads); {how}")
    return src


def cores_with_a_board():
    """The cores of CORES whose board this qemu-system-arm emulates."""
    boards = subprocess.run(["qemu-system-arm", "-machine", "help"], capture_output=True,
                            text=True).stdout.split()
    return [core for core, (board, _, _) in CORES.items() if board in boards]


def tflm_make(src, core, kernels, *targets, capture=False):
    """Runs tflite-micro's Makefile for a Cortex-M core and kernel set."""
    compiler = pathlib.Path(shutil.which("arm-none-eabi-gcc")).parent
    command = ["make", "-f", "tensorflow/lite/micro/tools/make/Makefile",
               f"TARGET={CORES[core][2]}", f"TARGET_ARCH={core}", f"BUILD_TYPE={BUILD_TYPE}",
               f"TARGET_TOOLCHAIN_ROOT={compiler}/",  # the compiler the firmware is built with
               f"-j{os.cpu_count() or 1}"]
    if kernels != "reference":
        command.append(f"OPTIMIZED_KERNEL_DIR={kernels}")
    done = subprocess.run(command + list(targets), cwd=src, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise FirmwareError(f"tflite-micro's Makefile failed for {core} / {kernels}: {tail[0]}")
    return done.stdout if capture else None


def library(src, core, kernels):
    """(path of libtensorflow-microlite.a, compile flags): built once per core and kernels."""
    log(f"tflite-micro for {core}, {kernels} kernels (the first build takes minutes)")
    tflm_make(src, core, kernels, "microlite")
    names = ("MICROLITE_LIB_PATH", "CXXFLAGS", "CCFLAGS", "INCLUDES", "CORE_OPTIMIZATION_LEVEL")
    text = tflm_make(src, core, kernels, *(f"print-{n}" for n in names), capture=True)
    values = make_variables(text)
    return src / values["MICROLITE_LIB_PATH"], {n: values[n] for n in names[1:]}


def make_variables(text):
    """{name: flags} of the Makefile's `print-NAME` lines, each split as the shell the Makefile
    passes them to would split it (cortex_m_generic quotes its -D values: -D"ARMCM4" is
    -DARMCM4); a *_PATH value stays one string."""
    values = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
    return {name: value if name.endswith("_PATH") else shlex.split(value)
            for name, value in values.items()}


def model_sources(folder, model_bytes, image):
    """Writes model_data.cc/.h of one .tflite file (its arena measured as the export does)."""
    from keras_onebit.export import micro
    from keras_onebit.export.files import write_text

    minimum = micro.minimum_arena(model_bytes, image)
    declared = micro.declared_arena(minimum)
    cc, h = micro.c_source(model_bytes, arena_size=declared, minimum_arena=minimum)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "model_data.cc", cc)
    write_text(folder / "model_data.h", h)
    return declared


def compile_image(src, lib, flags, model_folder, out, linker_script):
    """Compiles and links the firmware image `out` (an ELF file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cxxflags, ccflags = flags["CXXFLAGS"], flags["CCFLAGS"]
    semihosting = [] if SEMIHOSTING in cxxflags else [SEMIHOSTING]  # a target without it
    optimize = flags["CORE_OPTIMIZATION_LEVEL"]
    cxx = ["arm-none-eabi-g++", *cxxflags, *optimize, *semihosting, *flags["INCLUDES"],
           "-DONEBIT_FIRMWARE", f"-I{FIRMWARE}", f"-I{model_folder}"]
    cc = ["arm-none-eabi-gcc", *ccflags, *optimize, *semihosting, f"-I{FIRMWARE}"]
    objects = []
    for compiler, source in ((cxx, ROOT / "examples/micro_main.cc"),
                             (cxx, model_folder / "model_data.cc"),
                             (cc, FIRMWARE / "startup.c")):
        obj = out.parent / f"{source.stem}.o"
        _run([*compiler, "-c", str(source), "-o", str(obj)], src, f"compiling {source.name}")
        objects.append(str(obj))
    _run(["arm-none-eabi-g++", *cxxflags, *semihosting, "-nostartfiles", f"-L{FIRMWARE}",
          f"-T{FIRMWARE / linker_script}", "-Wl,--gc-sections",
          f"-Wl,-Map={out.with_suffix('.map')}", *objects, str(lib), "-lm", "-o", str(out)],
         src, "linking the firmware")


def _run(command, cwd, what):
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FirmwareError(f"{what} failed: {first_error(done.stderr)}")
    return done.stdout


def first_error(text):
    """The line of a compiler's or linker's output that says what went wrong."""
    lines = text.strip().splitlines()
    for marker in ("error:", "undefined reference", "error"):
        found = [line for line in lines if marker in line and "collect2" not in line]
        if found:
            return found[0].strip()
    return lines[-1].strip() if lines else "(no output)"


def plugin(folder):
    """Builds firmware/icount.c, the qemu plugin that counts instructions."""
    out = folder / "icount.so"
    _run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(FIRMWARE / "icount.c")], folder,
         "compiling the qemu plugin")
    return out


def decode_regions(symbols):
    """Address ranges of the DECODE kernel (tflite::Decode*, the lookup-table decoders)."""
    ranges = sorted((address & ~1, (address & ~1) + size) for name, (address, size)
                    in symbols.items() if "Decode" in name and size)
    merged = []
    for low, high in ranges:
        if merged and low <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return merged[:16]


def run_image(elf, board, plugin_path, symbols, inputs, folder):
    """Runs the image on qemu; (firmware output, plugin output)."""
    begin = firmware_report.symbol(symbols, "firmware_invoke_begin")[0] & ~1
    end = firmware_report.symbol(symbols, "firmware_invoke_end")[0] & ~1
    args = [f"begin={begin:#x}", f"end={end:#x}"]
    args += [f"region={low:#x}-{high:#x}" for low, high in decode_regions(symbols)]
    plugin_log = elf.with_suffix(".icount")
    command = ["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(elf),
               "-append", " ".join(inputs), "-plugin", ",".join([str(plugin_path), *args]),
               "-d", "plugin", "-D", str(plugin_log)]
    try:
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise FirmwareError(f"{elf.name} did not finish within {RUN_TIMEOUT} s on {board}") from e
    (elf.with_suffix(".out")).write_text(done.stdout)
    return done.stdout, plugin_log.read_text()


def write_inputs(folder, data_dir):
    """The gradient and CIFAR-10 test images 0-4 as the firmware reads them; ({name: image},
    {name: label}, input names in run order: the gradient first and again last)."""
    import numpy as np

    from keras_onebit.data import load_dataset

    data = load_dataset("cifar10", data_dir=data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    images = {"gradient": (np.arange(32 * 32 * 3) % 256).astype(np.float32).reshape(32, 32, 3)}
    labels = {"gradient": None}
    for i in range(TEST_IMAGES):
        name = f"test{i}.f32"
        images[name] = data["x_test"][i].astype(np.float32)
        labels[name] = int(data["y_test"][i])
        images[name].tofile(folder / name)
    order = ["gradient", *(f"test{i}.f32" for i in range(TEST_IMAGES)), "gradient"]
    return images, labels, order


def macs(model_bytes):
    """Multiply-accumulates of one inference: the CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED
    operators of the model (output elements x filter elements per output)."""
    import numpy as np
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytes(model_bytes), 0)
    codes = [max(model.OperatorCodes(i).BuiltinCode(),
                 model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    ops = schema.BuiltinOperator
    graph = model.Subgraphs(0)
    total = 0
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = codes[op.OpcodeIndex()]
        if code not in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D, ops.FULLY_CONNECTED):
            continue
        out = graph.Tensors(op.Outputs(0)).ShapeAsNumpy()
        filt = graph.Tensors(op.Inputs(1)).ShapeAsNumpy()
        per_output = int(np.prod(filt[1:-1])) if code == ops.DEPTHWISE_CONV_2D \
            else int(np.prod(filt[1:]))
        total += int(np.prod(out)) * per_output
    return total


def conditions(src):
    def first_line(command):
        done = subprocess.run(command, capture_output=True, text=True)
        return (done.stdout.strip().splitlines() or ["unknown"])[0]

    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or f"{TFLM_COMMIT} (expected; not a git tree)"
    return {"date": datetime.date.today().isoformat(),
            "compiler": first_line(["arm-none-eabi-gcc", "--version"]),
            "qemu": first_line(["qemu-system-arm", "--version"]),
            "tflite_micro": commit, "build_type": BUILD_TYPE,
            "downloads": {folder: what for folder, what in DOWNLOADS},
            "boards": {core: board for core, (board, _, _) in CORES.items()},
            "inputs": "the gradient (pixel i = i % 256), CIFAR-10 test images "
            "0-4, the gradient again (written again before its Invoke)",
            "instructions": "qemu TCG plugin firmware/icount.c, between the first instructions "
            "of firmware_invoke_begin and firmware_invoke_end; the median inference"}


def export_folder(model, out):
    """export/<model id>/ with the int8 and micro files, exported first when missing."""
    from keras_onebit import hub

    model_id = hub.default_model_id() if model == "default" else model
    folder = pathlib.Path(out).resolve() / model_id
    if not all((folder / f"{model_id}_{fmt}.tflite").is_file() for fmt in FORMATS):
        log(f"exporting {model_id} first (python -m keras_onebit export)")
        done = subprocess.run([sys.executable, "-m", "keras_onebit", "export", "--model", model,
                               "--out", str(out)])
        if done.returncode != 0:
            raise FirmwareError(f"exporting {model_id} failed (its message is above)")
    return model_id, folder


def import_library_quietly():
    """Imports keras_onebit (and so TensorFlow) with its quiet start-up (KERAS_ONEBIT_QUIET, as
    `python -m keras_onebit` does): TensorFlow's start-up lines would bury the progress lines."""
    os.environ.setdefault("KERAS_ONEBIT_QUIET", "1")
    import keras_onebit  # noqa: F401


def build_all(args):
    # One PATH for every subprocess (make, the compilers, size, nm, qemu) and for the checks.
    os.environ["PATH"] = tool_path(args.tflm_src or None)
    check_tools()
    src = check_sources(args.tflm_src)
    args.cores = args.cores or cores_with_a_board()
    import_library_quietly()
    model_id, folder = export_folder(args.model, args.out)
    work = folder / "firmware"
    images, labels, order = write_inputs(work / "inputs", args.data_dir)
    icount = plugin(work)
    libraries = {(core, kernels): library(src, core, kernels)
                 for core in args.cores for kernels in args.kernels}
    from keras_onebit.export import micro

    count = macs((folder / f"{model_id}_int8.tflite").read_bytes())  # the same for every format
    names = list(images)
    builds = []
    for fmt in args.formats:
        model_bytes = (folder / f"{model_id}_{fmt}.tflite").read_bytes()
        arena = model_sources(work / fmt, model_bytes, images["test0.f32"])
        outputs = micro.run(model_bytes, [images[n] for n in names], arena)
        reference = dict(zip(names, outputs, strict=True))
        for core in args.cores:
            for kernels in args.kernels:
                lib, flags = libraries[core, kernels]
                elf = work / f"{core}-{kernels}" / f"{fmt}.elf"
                compile_image(src, lib, flags, work / fmt, elf, CORES[core][1])
                builds.append(measure(elf, core, kernels, fmt, icount, order, reference,
                                      labels, count, len(model_bytes), work / "inputs"))
    write_report(work, model_id, builds, conditions(src), args.results)


def measure(elf, core, kernels, fmt, icount, order, reference, labels, count, model_bytes,
            inputs):
    board = CORES[core][0]
    size = firmware_report.parse_size(_run(["arm-none-eabi-size", "-A", str(elf)], elf.parent,
                                           "arm-none-eabi-size"))
    symbols = firmware_report.parse_symbols(_run(["arm-none-eabi-nm", "-S", "-C", str(elf)],
                                                 elf.parent, "arm-none-eabi-nm"))
    log(f"running {core} / {kernels} / {fmt} on qemu {board}")
    output, counts = run_image(elf, board, icount, symbols, order, inputs)
    record = firmware_report.build_record(
        core=core, kernels=kernels, fmt=fmt, board=board, size=size, symbols=symbols,
        run=firmware_report.parse_run(output), icount=firmware_report.parse_icount(counts),
        reference=reference, labels=labels, macs=count, model_bytes=model_bytes)
    log(f"  flash {record['flash_bytes']:,} B, RAM {record['ram_bytes']:,} B, "
        f"{record['instructions_per_inference']:,} instructions per inference, outputs "
        + ("bit-identical" if record["outputs_bit_identical"] else
           f"within {record['outputs_max_ulp']} ulp of the Python interpreter's"))
    return firmware_report.check_record(record)


def write_report(work, model_id, builds, conditions_, results):
    from keras_onebit.export.files import write_text

    report = {"model": model_id, "conditions": conditions_, "builds": builds}
    text = json.dumps(report, indent=2) + "\n"
    write_text(work / "report.json", text)
    write_text(work / "report.md", firmware_report.markdown(report))
    if results:
        write_text(results, text)
    log(f"wrote {work / 'report.json'} and report.md")


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="make firmware", description=__doc__.split("\n")[0])
    parser.add_argument("--tflm_src", default=os.environ.get("TFLM_SRC", ""))
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", default="export")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--results", default=None, help="also write report.json here")
    for name, choices in (("cores", tuple(CORES)), ("kernels", KERNELS), ("formats", FORMATS)):
        parser.add_argument(f"--{name}", default=None,
                            type=lambda text, c=choices, n=name: _choices(text, c, n))
    args = parser.parse_args(argv)
    args.kernels = args.kernels or list(KERNELS)
    args.formats = args.formats or list(FORMATS)
    return args


def _choices(text, choices, name):
    values = [v for v in text.split(",") if v]
    wrong = [v for v in values if v not in choices]
    if wrong or not values:
        raise argparse.ArgumentTypeError(f"--{name} takes {', '.join(choices)}; got {text!r}")
    return values


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        build_all(args)
    except FirmwareError as e:
        print(f"make firmware: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
