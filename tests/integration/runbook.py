"""A runbook followed during the incident a test provokes: every command in its fenced code blocks run as
written (a shell, the namespace's environment, `streamproc` on PATH), its output kept for the test to find
the evidence the runbook tells the engineer to look for, and a failure if the test leaves one out.

    async with Runbook("quote_stale", stack, ns, ID="BOND") as rb:
        assert "stale" in (await rb.run("streamproc inspect instrument")).stdout

Placeholders (`<ID>`, `<ACCOUNT>`, `<HOST>`, ...) are filled from the keyword arguments;
`tests/test_runbooks.py` fails if a runbook is never followed by an integration test."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, Stack

RUNBOOKS = ROOT / "runbooks"
BIN = Path(sys.executable).parent  # the venv's bin: `streamproc` as the install puts it on PATH


def commands(text: str) -> list[str]:
    """Every command line inside the runbook's fenced code blocks, in order."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@dataclass(frozen=True)
class Ran:
    """One command as run: its line, exit code and output."""

    line: str
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"$ {self.line}\n(exit {self.returncode})\n{self.stdout}{self.stderr}"


class Runbook:
    """The commands of ``runbooks/<name>.md``, to be run one by one during the incident."""

    def __init__(self, name: str, stack: Stack, namespace: str, **values: str) -> None:
        self.name = name
        self.lines = commands((RUNBOOKS / f"{name}.md").read_text())
        assert self.lines, f"runbooks/{name}.md has no commands"
        self.values = values
        self.env = {
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "REDIS_URL": stack.redis_url,
            "STREAMPROC_NAMESPACE": namespace,
        }
        self.ran: dict[str, Ran] = {}

    def line(self, prefix: str) -> str:
        """The one runbook line starting with ``prefix`` (placeholders still in)."""
        found = [line for line in self.lines if line == prefix or line.startswith(prefix + " ")]
        assert len(found) == 1, f"runbooks/{self.name}.md: {len(found)} commands start with {prefix!r}"
        return found[0]

    def fill(self, line: str) -> str:
        def value(m: re.Match[str]) -> str:
            key = m.group(1)
            assert key in self.values, f"runbooks/{self.name}.md: no value given for <{key}> in {line!r}"
            return self.values[key]

        return re.sub(r"<([A-Z_]+)>", value, line)

    async def run(self, prefix: str, expect: int | None = 0, **values: str) -> Ran:
        """Run the runbook line starting with ``prefix`` as written (placeholders filled); fail unless it
        exits ``expect`` (None: any code). ``values`` override the runbook's for this line."""
        line = self.line(prefix)
        saved, self.values = self.values, {**self.values, **values}
        try:
            filled = self.fill(line)
        finally:
            self.values = saved
        proc = await asyncio.create_subprocess_shell(
            filled,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        ran = Ran(filled, proc.returncode or 0, out.decode(), err.decode())
        self.ran[line] = ran
        print(f"[runbook {self.name}]\n{ran}")
        if expect is not None:
            assert ran.returncode == expect, f"runbooks/{self.name}.md: {ran}"
        return ran

    async def __aenter__(self) -> Runbook:
        return self

    async def __aexit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            left = [line for line in self.lines if line not in self.ran]
            assert not left, f"runbooks/{self.name}.md: the incident's test never ran {left}"
