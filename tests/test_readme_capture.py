"""The README's sandbox capture is a real run of docs/tour.sandbox, and stays one.

The capture keeps what every run prints the same way (commands, threads' lines, final states)
and leaves out what timing changes: ECS's event batches and in-progress edits of a parent.
Ids, timestamps and digests differ per run and are compared as shapes. To rewrite it after a
deliberate change: `.venv/bin/python -m tests.test_readme_capture`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TOUR = ROOT / "docs" / "tour.sandbox"
START, END = "<!-- tour:start -->", "<!-- tour:end -->"
COMMAND = "$ tugboat sandbox --script docs/tour.sandbox"
VOLATILE = (
    re.compile(r"│ ([a-z0-9_-]+: )?ECS:$"),
    re.compile(r"│ • \(service "),
    re.compile(r"│ • task "),
    re.compile(r"│ ([a-z0-9_-]+: )?Stopped tasks:$"),
    re.compile(r"^   ⏳ In progress"),
)
SERVICE_LABEL = re.compile(r"^   │ [^│]*│ (?:[✅❌⏪⚠️]+ )?([a-z0-9][a-z0-9_-]*): ")
"""A release's reply about one of its services (`api-worker: Service updated…`): the services
run side by side, so only each one's own replies keep their order."""
CHECKED = re.compile(r"^(\$ |   │ |   ✅ |   ❌ )")
"""The lines whose order every run keeps: commands, each thread's replies, final states.
(A parent's post and the requester's ephemeral may come either side of the first reply.)"""
SHAPES = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<task>"),
    (re.compile(r"ecs-svc/\d+"), "ecs-svc/<id>"),
    (re.compile(r"/p\d+"), "/p<ts>"),
    (re.compile(r"sha256:[0-9a-f]+…?"), "sha256:<digest>"),
    (re.compile(r"\[\d+ "), "["),
    (re.compile(r"\d+(\.\d+)?s\b"), "<s>"),
    (re.compile(r"next \d\d:\d\d UTC"), "next <time>"),
)


def replay(script: Path, rollout_seconds: float) -> str:
    """What `tugboat sandbox --script` prints for `script`; it must exit 0."""
    command = ["sandbox", "--script", str(script), "--rollout-seconds", str(rollout_seconds)]
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *command],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_tour() -> str:
    return replay(TOUR, 2)


def stable(output: str) -> list[str]:
    """The lines every run prints alike; a parent's in-progress edit drops its buttons line too."""
    kept: list[str] = []
    skipping_parent = False
    for line in output.splitlines():
        if line.startswith("#"):
            continue
        if skipping_parent and line.startswith("   [") and line.endswith("]"):
            continue
        skipping_parent = False
        if any(p.search(line) for p in VOLATILE):
            skipping_parent = line.startswith("   ⏳")
            if skipping_parent and kept and kept[-1].startswith("↻"):
                kept.pop()
            continue
        kept.append(line.rstrip())
    return kept


def shape(line: str) -> str:
    for pattern, replacement in SHAPES:
        line = pattern.sub(replacement, line)
    return line


def captured() -> list[str]:
    text = README.read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0]
    lines = block.strip().removeprefix("```").removesuffix("```").strip("\n").splitlines()
    assert lines and lines[0] == COMMAND, "the capture starts with the command that made it"
    return lines[1:]


def segments(lines: list[str]) -> list[tuple[str, list[str]]]:
    """The lines after each command, up to the next: one command's story each."""
    found: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            found.append((line, []))
        elif found and CHECKED.match(line):
            found[-1][1].append(line)
    return found


def stream(line: str) -> str:
    """Which replies a line keeps its order among: its service's in a release, else the thread's."""
    labelled = SERVICE_LABEL.match(line)
    return labelled.group(1) if labelled else ""


def test_the_readme_capture_is_what_the_tour_prints() -> None:
    """Each command's thread replies come in the README's order; its final states appear.

    A parent's final edit and its thread's last reply may land either way round, so final
    states are looked for anywhere in their command's story, replies in order (a release's
    services each in their own order, as they run side by side).
    """
    ran = segments([shape(line) for line in stable(run_tour())])
    wanted = segments([shape(line) for line in captured()])
    assert [command for command, _ in ran] == [command for command, _ in wanted], "the tour's commands"
    missing = []
    for (command, got), (_, want) in zip(ran, wanted, strict=True):
        at: dict[str, int] = {}
        for line in want:
            if not line.startswith("   │ "):
                if line not in got:
                    missing.append(f"{command}: {line}")
                continue
            mine = [i for i, seen in enumerate(got) if seen == line and i >= at.get(stream(line), 0)]
            if mine:
                at[stream(line)] = mine[0] + 1
            else:
                missing.append(f"{command}: {line}")
    assert not missing, "README capture lines the tour no longer prints (in this order):\n" + "\n".join(
        missing[:10]
    )


def write() -> None:
    """Rewrite the README's capture from a fresh run of the tour."""
    lines = stable(run_tour())
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    block = "\n".join(["```", COMMAND, *lines, "```"])
    README.write_text(f"{head}{START}\n{block}\n{END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    write()
