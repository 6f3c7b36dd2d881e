"""Progress (progress.py): drawn on a terminal only, with rate and ETA; silent otherwise."""

import io
import sys
import time

import pytest
import limemu
from limemu.progress import StatusLine, StepProgress, bar, following, last_line, note


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch):
    """Call it in the test's body: stderr becomes a terminal (pytest resets stderr to its
    capture between a fixture's set-up and the test)."""
    def install():
        screen = Terminal()
        monkeypatch.setattr(sys, "stderr", screen)
        return screen
    return install


def test_a_run_on_a_terminal_shows_steps_rate_and_eta(terminal):
    screen = terminal()
    meter = StepProgress("model", 64)
    meter.begin(0, 1000)
    for step in (300, 600, 1000):
        time.sleep(0.15)                 # tqdm redraws at most every 0.1 s
        meter(step, 1000)
    meter.end()
    text = screen.getvalue()
    assert "model" in text and "1000/1000" in text and "step/s" in text
    assert "cell-evaluations/s" in text and "<" in text          # tqdm's elapsed<remaining


@pytest.mark.parametrize("enabled", [True, False])
def test_nothing_is_drawn_off_a_terminal_or_when_quiet(capsys, monkeypatch, enabled):
    if not enabled:
        monkeypatch.setattr(sys, "stderr", Terminal())
    meter = StepProgress("model", 8, enabled=enabled)
    meter.begin(0, 10)
    meter(10, 10)
    meter.end()
    with bar(total=3, desc="reads", enabled=enabled) as reads:
        reads.update(3)
    with StatusLine("synthesis", enabled=enabled) as status:
        status.update("ABC: done")
    if enabled:
        assert capsys.readouterr().err == ""
    else:
        assert sys.stderr.getvalue() == ""


def test_a_status_line_shows_the_latest_news(terminal):
    screen = terminal()
    with StatusLine("place and route") as status:
        status.update("Info: Routing")
    assert "place and route" in screen.getvalue() and "Routing" in screen.getvalue()


def test_a_note_is_a_plain_line(terminal):
    screen = terminal()
    note("sweep: 3 runs")
    assert screen.getvalue() == "sweep: 3 runs\n"


def test_the_api_run_draws_on_a_terminal_and_not_with_progress_off(terminal):
    screen = terminal()
    problem = limemu.maxcut(cells=16, seed=1)
    spec = limemu.make_spec(problem, 50)
    limemu.run(problem, spec, 50, progress=False)
    assert screen.getvalue() == ""
    limemu.run(problem, spec, 50)
    assert "model" in screen.getvalue() and "/50" in screen.getvalue()


def test_a_build_followed_on_a_terminal_shows_its_log_and_passes_its_outcome(terminal,
                                                                            tmp_path):
    screen = terminal()
    log = tmp_path / "build.log"

    def work():
        log.write_text("g++ -c one.cpp\nlinking Vtop\n")
        time.sleep(0.7)
        return 42

    assert following(work, log, "verilator build") == 42
    assert "verilator build" in screen.getvalue() and "linking Vtop" in screen.getvalue()

    def failing():
        raise SystemExit("make: *** error 2")

    with pytest.raises(SystemExit, match="error 2"):
        following(failing, log, "verilator build")


def test_a_build_off_a_terminal_just_runs(capsys, tmp_path):
    assert following(lambda: "built", tmp_path / "none.log", "vboard build") == "built"
    assert capsys.readouterr().err == ""
    assert last_line(tmp_path / "none.log") == ""
