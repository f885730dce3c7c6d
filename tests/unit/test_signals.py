"""signals.py: each ending signal raises once; a signal after the exit code is chosen changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from restorecheck.signals import Terminated, deferred_signals, handle_termination


def test_each_signal_raises_once_then_is_ignored_until_the_block_ends() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with handle_termination():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)  # the second one: ignored, the cleanup goes on
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_held_by_a_deferred_block_raises_once_it_ends() -> None:
    with handle_termination():
        reached = False
        with pytest.raises(KeyboardInterrupt), deferred_signals():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            reached = True  # the block ran to its end
        assert reached
        signal.raise_signal(signal.SIGINT)  # raised once, ignored after


@pytest.mark.parametrize("argv, code", [(["--version"], 0), (["no-such-command"], 2)])
def test_a_signal_while_the_interpreter_shuts_down_keeps_the_exit_code(tmp_path: Path, argv: list[str],
                                                                        code: int) -> None:
    """Python puts the default action back before it finalizes the modules: a SIGINT landing then
    killed the process (exit status -2) after the run had reported and chosen its code. Here the
    signal comes from an object finalized at shutdown, after main() has returned."""
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal
        class Late:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGTERM)
        late = Late()
        from restorecheck.cli import main
        main({argv!r})
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_inside_code_run_from_a_string_still_exits_3(tmp_path: Path) -> None:
    """A Ctrl-C landing while a lazy import built a dataclass (``exec`` of generated text) made
    CPython end ``python -m restorecheck`` by SIGINT after it had printed its line and chosen
    exit 3 (the interpreter keeps a note of an exact KeyboardInterrupt leaving exec'd text)."""
    module = tmp_path / "interrupted_exec.py"
    module.write_text(textwrap.dedent("""
        from restorecheck import cli

        @cli.cli.command("interrupted-exec")
        def interrupted_exec() -> None:
            exec("import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**8): pass")

        cli.main(["interrupted-exec"])
    """))
    proc = subprocess.run([sys.executable, "-m", "interrupted_exec"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])})
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "restorecheck: error: interrupted by Ctrl-C (SIGINT); everything restorecheck started was removed"]
