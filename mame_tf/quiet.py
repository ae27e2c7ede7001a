"""Import TensorFlow without its start-up lines on the console, keeping anything else it prints.

TensorFlow 2.21 prints its start-up messages (oneDNN, "Could not find cuda drivers", the CPU
instruction notice and, on a machine without a GPU, ``failed call to cuInit: ... CUDA error``) through
C++ absl logging *before* absl's log is initialised; ``TF_CPP_MIN_LOG_LEVEL`` does not reach those, and
they are written straight to file descriptor 2. ``import_tensorflow()`` therefore points descriptor 2
at a temporary file while TensorFlow is imported and its devices are listed (when the GPU platform
logs ``cuInit``), then writes back every line that is not one of these known start-up messages, so a
real error during the import still reaches the console. The launchers call it first.
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|port\.cc:\d+\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"
    r"|Unable to register cu(DNN|FFT|BLAS) factory"
)


def filter_startup_lines(text: str) -> str:
    """``text`` without TensorFlow's known start-up lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not STARTUP_NOISE.search(line))


def import_tensorflow():
    """``import tensorflow`` (and initialise its device list) with the start-up lines filtered out."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = filter_startup_lines(tmp.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    return tf
