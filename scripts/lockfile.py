"""Read and split the lock files in requirements/ (standard library only: the set-up scripts
run it with the Python that creates the venv, before anything is installed).

    python scripts/lockfile.py split LOCK OUT_REST OUT_ONLY NAME...
        write LOCK's entries for NAME... to OUT_ONLY and all others to OUT_REST, hashes kept
    python scripts/lockfile.py names LOCK
        print 'name==version' for every entry
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^ ;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 normalised name: 'TF_Keras' and 'tf-keras' are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def entries(lock: Path) -> dict[str, tuple[str, str]]:
    """Each entry's canonical name -> (version, its text: the pin line and its hash lines)."""
    result: dict[str, tuple[str, str]] = {}
    name = None
    for line in lock.read_text().splitlines(keepends=True):
        match = _ENTRY.match(line)
        if match:
            name = canonical(match.group(1))
            result[name] = (match.group(3), line)
        elif name and line.startswith("    --hash="):
            version, text = result[name]
            result[name] = (version, text + line)
        elif not line.startswith(" "):
            name = None
    return result


def split(lock: Path, rest: Path, only: Path, names: list[str]) -> None:
    wanted = {canonical(n) for n in names}
    found = entries(lock)
    missing = wanted - found.keys()
    if missing:
        raise SystemExit(f"{lock}: no entry for {', '.join(sorted(missing))}")
    rest.write_text("".join(text for n, (_, text) in found.items() if n not in wanted))
    only.write_text("".join(text for n, (_, text) in found.items() if n in wanted))


def main(argv: list[str]) -> None:
    if len(argv) >= 5 and argv[0] == "split":
        split(Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4:])
    elif len(argv) == 2 and argv[0] == "names":
        for name, (version, _) in entries(Path(argv[1])).items():
            print(f"{name}=={version}")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
