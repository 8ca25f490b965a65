"""Shared by the training examples: run metatrain's command line."""

import subprocess
import sys


def run_mtt(folder: str, *arguments: str) -> str:
    """Run ``mtt`` in ``folder``; return its log (metatrain logs to stderr).

    :raises RuntimeError: with the end of the log, when ``mtt`` fails
    """
    command = [sys.executable, "-m", "metatrain", *arguments]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr
