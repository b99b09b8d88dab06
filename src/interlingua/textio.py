"""Reading user text files: clear errors for missing, empty or non-UTF-8 input."""

from __future__ import annotations

import json
from pathlib import Path

from interlingua.errors import InterlinguaError


def read_documents(path: str | Path) -> list[str]:
    """Documents from a text file: ``.jsonl`` (one ``{"text": …}`` per line) or plain text
    (one document per non-empty line)."""
    path = Path(path)
    if not path.is_file():
        raise InterlinguaError(f"text file {path} does not exist.")
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InterlinguaError(
            f"{path} is not valid UTF-8 (bad byte 0x{raw[exc.start]:02x} on line {line}). "
            "Convert it first, e.g.  iconv -f latin1 -t utf-8 in.txt > out.txt"
        ) from None
    content = content.removeprefix("\ufeff")
    if path.suffix == ".jsonl":
        docs = []
        for n, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InterlinguaError(f"{path} line {n} is not JSON ({exc.msg}).") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise InterlinguaError(f'{path} line {n} must be an object with a "text" string.')
            docs.append(obj["text"])
    else:
        docs = [line for line in content.splitlines() if line.strip()]
    if not docs:
        raise InterlinguaError(f"{path} contains no text (it is empty or only blank lines).")
    return docs
