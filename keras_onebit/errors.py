"""The library's errors. Every error a user can cause is a `keras_onebit.Error`.

    Error                      one base class: `except keras_onebit.Error`
    ├── ConfigError            an argument, name or option the library cannot use
    ├── MissingDependencyError an optional dependency that is not installed (names the extra)
    ├── BackendError           a TensorFlow-only feature called on another Keras backend
    ├── DataError              (keras_onebit.data) a data file missing or malformed
    ├── HubError               (keras_onebit.hub) a hub entry, manifest or weights file
    └── ExportError            (keras_onebit.export) a model, archive or path the exporter refuses

The classes also derive from the built-in class a caller would have caught
before (ValueError, ImportError), so existing `except ValueError` code keeps
working. Messages are one line and say what is wrong and where.
"""


class Error(Exception):
    """Base class of every error keras_onebit raises on bad input."""


class ConfigError(Error, ValueError):
    """An argument, model name or option value the library cannot use."""


class MissingDependencyError(Error, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


class BackendError(Error, RuntimeError):
    """A feature that needs the TensorFlow backend called on another backend."""


def one_line(error, limit=300):
    """The text of `error` (or any object) on one line, at most `limit` characters:
    what the library's one-line messages quote of an underlying error.

    Args:
        error: an exception or any object with a str().
        limit: the most characters returned ("..." marks a cut).

    Returns:
        The str, its whitespace runs collapsed to single spaces.
    """
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def require(module, extra, what):
    """Imports and returns `module`, or raises `MissingDependencyError` that
    says `pip install keras_onebit[extra]` is needed for `what`.

    Args:
        module: the dotted module name to import, e.g. "scipy.io".
        extra: the pip extra of keras_onebit that installs it.
        what: the feature that needs it, for the message.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the module cannot be imported.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"{what} needs the optional dependency {module.split('.')[0]!r}: "
            f"pip install 'keras_onebit[{extra}]'.") from e


def require_tensorflow_installed():
    """Raises `MissingDependencyError` unless some TensorFlow is installed
    (tensorflow, tensorflow-cpu, tf-nightly: any flavour provides the module;
    the package does not force one, as larq does not).

    Raises:
        MissingDependencyError: no `tensorflow` module is importable.
    """
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(
            "keras_onebit needs TensorFlow 2.21 (any flavour): pip install "
            "'keras_onebit[tensorflow]', 'keras_onebit[cpu]' or 'keras_onebit[and-cuda]', or "
            "install the TensorFlow you use.")


def require_tensorflow_backend(what):
    """Raises `BackendError` unless Keras runs on the TensorFlow backend.

    Args:
        what: the feature that needs TensorFlow, for the message.

    Raises:
        BackendError: Keras runs on another backend.
    """
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise BackendError(
            f"{what} needs the TensorFlow backend (KERAS_BACKEND=tensorflow); Keras runs on "
            f"{backend!r}. Save the model as .keras and export it under TensorFlow.")
