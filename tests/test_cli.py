"""`python -m keras_onebit`: help, a quiet start-up and one-line errors.

The command line runs in subprocesses with TF_CPP_MIN_LOG_LEVEL removed from
the environment, so the quiet start-up checked here is its own. Each
subprocess imports TensorFlow (about 4 s of CPU), so the many error cases of
one command share one "driver" subprocess: it loads TensorFlow as
`python -m keras_onebit` does (fd 2 silenced) and calls
`keras_onebit.__main__.main` once per case, recording exit code, stdout and
stderr at the file-descriptor level. The module fixture `runs` starts every
subprocess, four at a time; the tests read the results.
"""

import concurrent.futures
import errno
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import types

import pytest

from keras_onebit import _startup as startup

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = ("export", "hub", "eval", "train", "teacher")
TF_NOISE = ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "XNNPACK", "fully_quantize")

# name: (arguments, text the one error line must contain)
USER_ERRORS = {
    "train_unknown_model": (["train", "--model", "nosuch"], "--model=nosuch"),
    "train_batch_size_0": (["train", "--batch_size", "0"], "--batch_size=0"),
    "train_epochs_0": (["train", "--epochs", "0"], "--epochs=0"),
    "train_epochs_not_a_number": (["train", "--epochs", "abc"], "--epochs=abc"),
    "train_out_in_proc": (["train", "--out", "/proc/x"], "--out /proc/x"),
    "train_unknown_flag": (["train", "--nosuch_flag", "1"], "nosuch_flag"),
    "train_min_lr_above_max": (["train", "--min_lr", "1", "--max_lr", "0.1"], "--min_lr"),
    "eval_batch_size_0": (["eval", "--model", "wrn_20_1", "--batch_size", "0"],
                          "--batch_size=0"),
    "eval_batch_size_negative": (["eval", "--model", "wrn_20_1", "--batch_size", "-5"],
                                 "--batch_size=-5"),
    "eval_unknown_model": (["eval", "--model", "nope"], "'nope'"),
    "eval_without_model": (["eval"], "--model is required"),
    "export_missing_weights": (["export", "--weights", "missing.weights.h5"],
                               "missing.weights.h5"),
    "export_unknown_model": (["export", "--model", "unknown-id"], "'unknown-id'"),
    "export_out_in_proc": (["export", "--out", "/proc/x/export"], "/proc/x/export"),
    "export_bad_format": (["export", "--formats", "float,int3"], "int3"),
    "train_teacher_missing": (["train", "--teacher", "missing.npy"], "--teacher missing.npy"),
    "train_distill_not_at_restart": (["train", "--teacher", "t.npy", "--distill_from_epoch",
                                      "3"], "end of a warm-restart cycle"),
    # a flag without effect in the combination given (train's check_flag_combinations)
    "train_distill_from_epoch_alone": (["train", "--distill_from_epoch", "2"],
                                       "--distill_from_epoch has no effect without --teacher"),
    "train_storage_scale_alone": (["train", "--storage_scale", "p99"],
                                  "--storage_scale has no effect without --input_storage"),
    "train_iterative_order_alone": (["train", "--iterative_order", "reverse"],
                                    "--iterative_order has no effect"),
    "train_hub_default_alone": (["train", "--hub_default"],
                                "--hub_default has no effect without --hub"),
    "train_resume_and_overwrite": (["train", "--resume", "--overwrite"], "give one of the two"),
    "teacher_without_out": (["teacher", "--model", "wrn_20_1"], "--out"),
    "teacher_factory_without_weights": (["teacher", "--model", "wrn_20_1", "--out", "t.npy"],
                                        "--model wrn_20_1 is a factory name without weights"),
    "eval_factory_without_weights": (["eval", "--model", "wrn_20_1"],
                                     "--model wrn_20_1 is a factory name without weights"),
    "eval_agree_with_factory": (["eval", "--model", "wrn_20_1-cifar10-1bit", "--agree_with",
                                 "wrn_20_1"], "--agree_with wrn_20_1 is a factory name"),
    "export_factory_without_weights": (["export", "--model", "wrn_20_1"], "--seeded"),
    "teacher_unknown_model": (["teacher", "--model", "nope", "--out", "t.npy"], "'nope'"),
    "hub_unknown_action": (["hub", "nosuch"], "'nosuch'"),
    "hub_verify_without_entry": (["hub", "verify"], "--entry"),
    "hub_bad_layout": (["hub", "import-mcdonnell", "--layout", "sideways"], "sideways"),
    "hub_verify_offline": (["hub", "verify", "--entry", "wrn_20_10-cifar10-1bit"],
                           "wrn_20_10-cifar10-1bit"),
}
# Cases run as real `python -m keras_onebit` subprocesses (the rest run in drivers).
STANDALONE = ("train_batch_size_0", "hub_verify_offline")

DRIVER = textwrap.dedent("""
    import errno, json, os, sys, tempfile
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # as `python -m keras_onebit` sets it
    null, saved = os.open(os.devnull, os.O_WRONLY), os.dup(2)
    os.dup2(null, 2)  # and TensorFlow loads silently, as with `python -m`
    import keras_onebit.__main__ as cli
    os.dup2(saved, 2)
    from absl import flags

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def run(args, enospc):
        flags.FLAGS.unparse_flags()
        files = [tempfile.TemporaryFile("w+") for _ in range(2)]
        saved = [os.dup(1), os.dup(2)]
        fsync = os.fsync
        if enospc:
            os.fsync = full_disk  # a full disk: the first file written fails
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(files[0].fileno(), 1), os.dup2(files[1].fileno(), 2)
        try:
            code = cli.main(["keras_onebit", *args])
        except SystemExit as e:
            code = e.code
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.fsync = fsync
        out, err = [(f.seek(0), f.read())[1] for f in files]
        return {"returncode": code or 0, "stdout": out, "stderr": err}

    cases, target = json.loads(sys.argv[1]), sys.argv[2]
    results = {name: run(args, enospc) for name, (args, enospc) in cases.items()}
    with open(target, "w") as f:
        json.dump(results, f)
""")


def quiet_env(**extra):
    """The user's environment without TF_CPP_MIN_LOG_LEVEL (and without proxies)."""
    drop = {"TF_CPP_MIN_LOG_LEVEL", "no_proxy", "NO_PROXY"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "PYTHONWARNINGS": "", **extra}


def run_cli(args, env=None):
    """`python -m keras_onebit ARGS`: CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "keras_onebit", *args], cwd=ROOT,
                          env=env or quiet_env(), capture_output=True, text=True, timeout=240)


def run_driver(cases, target):
    """{name: result} of `cases` ({name: (args, full disk?)}) run in one driver process."""
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), str(target)],
                          cwd=ROOT, env=quiet_env(), capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: types.SimpleNamespace(**result)
            for name, result in json.loads(target.read_text()).items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{case name: result with returncode, stdout, stderr} of every case."""
    tmp = tmp_path_factory.mktemp("cli")
    offline = quiet_env(https_proxy="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9",
                        KERAS_ONEBIT_CACHE=str(tmp / "cache"), KERAS_ONEBIT_HUB="")
    standalone = {
        "help": (["--help"],), "no_arguments": ([],), "unknown_command": (["nosuch"],),
        "hub_list": (["hub", "list"],), "train_batch_size_0": (["train", "--batch_size", "0"],),
        "hub_verify_offline": (USER_ERRORS["hub_verify_offline"][0], offline),
        "train_on_jax": (["train", "--model", "wrn_20_1", "--dataset", "mnist", "--epochs", "1",
                          "--train_limit", "125", "--test_limit", "200",
                          "--out", str(tmp / "jax_run"), "--verbose", "0", "--threads", "1"],
                         quiet_env(KERAS_BACKEND="jax")),
    }
    drivers = {command: {f"help_{command}": ([command, "--help"], False)}
               for command in COMMANDS}
    for name, (args, _) in USER_ERRORS.items():
        if name not in STANDALONE:
            drivers[args[0]][name] = (args, False)
    drivers["train"]["debug"] = (["train", "--out", "/proc/x", "--debug"], False)
    (tmp / "held").mkdir()
    (tmp / "held" / "state.json").write_text('{"epochs_done": 3}')
    drivers["train"]["held_run"] = (["train", "--out", str(tmp / "held")], False)
    (tmp / "cut.keras").write_bytes(b"PK\x03\x04" + bytes(60))  # a zip's first bytes only
    drivers["eval"]["cut_keras_file"] = (["eval", "--model", str(tmp / "cut.keras")], False)
    drivers["export"]["full_disk"] = (["export", "--model", "wrn_20_1", "--seeded", "--formats",
                                       "float", "--images", "1", "--out", str(tmp / "full")], True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [pool.submit(run_driver, cases, tmp / f"{command}.json")
                for command, cases in drivers.items()]
        singles = {name: pool.submit(run_cli, *case) for name, case in standalone.items()}
        results = {name: job.result() for name, job in singles.items()}
        for job in jobs:
            results.update(job.result())
    results["tmp"] = tmp
    return results


def error_line(proc, command):
    """The single stderr line of a failed run, after checking its form."""
    assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith(f"keras_onebit {command}: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(USER_ERRORS))
def test_user_error_is_one_line_and_exit_code_2(runs, name):
    args, bad_value = USER_ERRORS[name]
    line = error_line(runs[name], args[0])
    assert bad_value in line


def test_full_disk_during_export_is_one_line_naming_the_folder(runs):
    line = error_line(runs["full_disk"], "export")
    assert os.strerror(errno.ENOSPC) in line and str(runs["tmp"] / "full") in line
    assert "--out" in line  # what to do
    assert not list((runs["tmp"] / "full").rglob("*.tmp"))  # nothing half-written left


def test_a_run_folder_holding_a_run_is_not_replaced_unasked(runs):
    held = runs["tmp"] / "held"
    line = error_line(runs["held_run"], "train")
    assert f"--out {held} holds a run (state.json)" in line and "--overwrite" in line
    assert (held / "state.json").read_text() == '{"epochs_done": 3}'


def test_a_cut_keras_file_is_one_line_naming_it(runs):
    line = error_line(runs["cut_keras_file"], "eval")
    assert f"--model {runs['tmp'] / 'cut.keras'}: not a complete .keras file" in line
    assert "64 bytes" in line


def test_offline_hub_verify_is_one_line(runs):
    line = error_line(runs["hub_verify_offline"], "hub")
    assert "wrn_20_10-cifar10-1bit" in line and "KERAS_ONEBIT_HUB" in line


def test_help_describes_each_command(runs):
    proc = runs["help"]
    assert proc.returncode == 0 and proc.stderr == ""
    described = [line.split()[0] for line in proc.stdout.splitlines()
                 if line.startswith("  ") and len(line.split()) > 2]
    assert described == list(COMMANDS)
    assert "--help" in proc.stdout and "--debug" in proc.stdout


@pytest.mark.parametrize("args, says", [
    (["--help"], "usage: python -m keras_onebit"), (["help"], "usage: python -m keras_onebit"),
    (["--debug", "-h"], "usage: python -m keras_onebit"), ([], "usage: python -m keras_onebit"),
    (["hub", "list"], "hub folders searched"), (["hub", "default"], "-cifar10-1bit"),
    (["--debug", "hub", "verify"], "verify needs --entry"),
])
def test_overview_and_hub_listing_import_neither_tensorflow_nor_keras(args, says):
    """The overview and the hub's list, default and verify answer in well under a
    second: they import neither TensorFlow nor Keras (importing them takes ~6 s)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "keras_onebit", *args],
                          cwd=ROOT, env=quiet_env(), capture_output=True, text=True, timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "keras_onebit._startup" in imported
    assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras")}
    assert says in proc.stdout + proc.stderr


@pytest.mark.parametrize("args, expected", [
    ([], True), (["--help"], True), (["help"], True), (["--debug", "--helpfull"], True),
    (["train", "--help"], False), (["hub", "list"], False), (["--debug", "eval"], False),
])
def test_overview_only_for_a_top_level_help(args, expected):
    assert startup.overview_only(args, ["python", "-m", "keras_onebit", *args]) is expected
    assert not startup.overview_only(args, ["python", "-c", "import keras_onebit"])


@pytest.mark.parametrize("args, expected", [
    (["hub", "list"], True), (["--debug", "hub", "verify", "--entry", "x"], True), ([], True),
    (["hub", "import-mcdonnell"], False), (["hub"], False), (["eval", "list"], False),
])
def test_light_start_for_the_hubs_file_commands(args, expected):
    assert startup.light_start(args, ["python", "-m", "keras_onebit", *args]) is expected
    assert not startup.light_start(args, ["python", "-c", "import keras_onebit"])


@pytest.mark.parametrize("args", ["--help", "hub list"])
def test_output_closed_early_is_neither_a_traceback_nor_an_error(args):
    # `true` exits without reading: the output goes to a pipe with no reader.
    proc = subprocess.run(f"{sys.executable} -m keras_onebit {args} | true", shell=True,
                          cwd=ROOT, env=quiet_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.stderr == ""


def test_no_arguments_prints_usage_and_exits_2(runs):
    proc = runs["no_arguments"]
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: python -m keras_onebit") and "train" in proc.stderr


def test_unknown_command_is_one_line(runs):
    proc = runs["unknown_command"]
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("keras_onebit: error: unknown command 'nosuch'")


OWN_FLAGS = {"export": ("--formats", "--micro_images"), "hub": ("--entry", "--mat"),
             "eval": ("--agree_with", "--exact_only"), "train": ("--epochs", "--resume"),
             "teacher": ("--[no]flip", "--format")}


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_lists_its_own_flags(runs, command):
    proc = runs[f"help_{command}"]
    assert proc.returncode == 0 and proc.stderr == ""
    assert "Try --helpfull" not in proc.stdout and "--[no]debug" in proc.stdout
    for flag in OWN_FLAGS[command]:
        assert flag in proc.stdout
    for other, others_flags in OWN_FLAGS.items():
        if other != command:
            assert others_flags[0] not in proc.stdout, other


def test_normal_run_prints_no_tensorflow_lines(runs):
    proc = runs["hub_list"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert not [word for word in TF_NOISE if word in proc.stdout]
    assert "wrn_20_1-cifar10-1bit" in proc.stdout


def test_a_command_on_jax_is_quiet_too(runs):
    """On Keras's JAX backend TensorFlow is imported later (by the tf.data input
    pipeline), not by Keras: the command line loads it silently up front all the same."""
    proc = runs["train_on_jax"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not [word for word in TF_NOISE if word in proc.stdout + proc.stderr], proc.stderr
    assert "final: test_images=200," in proc.stdout  # --test_limit 200


def test_a_program_can_ask_for_the_quiet_start():
    """KERAS_ONEBIT_QUIET=1 (bench/ sets it): a program's first `import keras_onebit`
    loads TensorFlow with its start-up lines silenced, and later C++ lines stay off."""
    code = "import keras_onebit, tensorflow as tf; print(int(tf.reduce_sum(tf.ones(3))))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env=quiet_env(KERAS_ONEBIT_QUIET="1"), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == "3\n" and proc.stderr == "", proc.stderr


def test_hub_list_shows_size_and_recorded_accuracy(runs):
    """Each shipped entry's line carries its weights' size and the exact-test
    accuracy its config.json records (what a user picks a model by)."""
    lines = {line.split()[0]: line for line in runs["hub_list"].stdout.splitlines() if line}
    for config_path in sorted((ROOT / "pretrained").glob("*/config.json")):
        config = json.loads(config_path.read_text())
        line = lines[config["id"]]
        assert f"{config['weights_bytes'] / 1e3:.0f} kB" in line or (
            f"{config['weights_bytes'] / 1e6:.1f} MB" in line)
        metrics = config["metrics"]
        if "exact_test_accuracy" in metrics:
            assert f"{100 * metrics['exact_test_accuracy']:.1f}% exact" in line
        else:
            assert f"{100 * metrics['test_accuracy']:.2f}%" in line


def test_debug_shows_the_traceback_and_tensorflow_lines(runs):
    proc = runs["debug"]
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("keras_onebit train: error: --out /proc/x")


@pytest.mark.parametrize("argv, expected", [
    (["python", "-m", "keras_onebit", "hub"], True),
    (["python", "-X", "dev", "-mkeras_onebit"], True),
    (["python", "-m", "pytest", "tests"], False),
    (["python", "-c", "import keras_onebit"], False),
    (["python", "script.py", "-m", "keras_onebit"], False),
])
def test_quiet_start_only_for_the_command_line(argv, expected):
    assert startup.launched_as_cli(argv) is expected


def test_debug_requested():
    assert startup.debug_requested(["train", "--debug"])
    assert startup.debug_requested(["--debug=true"])
    assert not startup.debug_requested(["--debug=false", "--", "--debug"])
