"""Output files: checked before a command runs, written atomically when it is done.

A result that took an hour to compute must not be lost because its path is a folder or its
folder cannot be written, and a kill in the middle of a write must leave the previous file in
place, never half a file: ``check_output_file`` (and ``check_output_folder``) run before the
work, ``write_atomic`` writes a temporary file in the same folder and renames it over the
target.
"""

import os
import uuid
from pathlib import Path

from limemu.model.errors import ConfigError


def _fail(option, path, why):
    raise ConfigError(f"{option} = {str(path)!r}: {why}")


def _probe_folder(folder, option, path):
    """Create ``folder`` (and its parents) and check a file can be created in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        _fail(option, path, f"its folder {str(folder)!r} is a file")
    except OSError as error:
        _fail(option, path, f"cannot create its folder {str(folder)!r} ({error.strerror})")
    probe = folder / f".limemu-probe.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with open(probe, "xb"):
            pass
    except OSError as error:
        _fail(option, path, f"cannot write into its folder {str(folder)!r} ({error.strerror})")
    finally:
        probe.unlink(missing_ok=True)


def check_output_file(path, option):
    """ConfigError unless a file can be written at ``path``: not a folder, its folder exists
    (created here if missing) and is writable. Returns the path."""
    path = Path(path)
    if not path.name or path.is_dir():
        _fail(option, path, "is a folder; give a file name")
    if path.exists() and not path.is_file():
        _fail(option, path, "is not a regular file")
    _probe_folder(path.parent, option, path)
    return path


def check_output_folder(path, option):
    """ConfigError unless ``path`` is (or can be created as) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        _fail(option, path, "is a file; give a folder")
    _probe_folder(path, option, path)
    return path


def write_atomic(path, data):
    """Write bytes (or text) to ``path`` atomically: a temporary file in the same folder, then
    os.replace, so that a reader (or an interrupted writer) never sees half a file."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as f:              # "x": a new file, with the umask's mode
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"{str(path)!r}: cannot write it ({error.strerror or error})") \
            from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
