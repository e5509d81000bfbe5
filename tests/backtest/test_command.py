"""`streamproc backtest` end to end on a small run: table printed, Markdown and charts written."""

from __future__ import annotations

from streamproc.cli import main


def test_the_command_writes_the_report_and_charts(tmp_path, capsys) -> None:
    out = tmp_path / "bt"
    assert main(["backtest", "--scenario", "calm", "--seeds", "2", "--years", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Daryanani 20% / 2 wk" in printed and "across 2 seeds" in printed
    report = (out / "report.md").read_text()
    assert "| buy-and-hold |" in report and "![calm](calm.png)" in report
    assert (out / "calm.png").stat().st_size > 10_000
