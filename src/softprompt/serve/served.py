"""What ``POST /v1/prompts`` and ``DELETE /v1/prompts/{name}`` changed, kept in the prompts folder across restarts.

``<root>/.served.json`` holds ``{"added": {name: folder relative to the root}, "removed": [name, ...]}``, replaced
in one rename (``io.atomic.atomic_write_text``) after the change took effect and before the reply: a server
killed at any point restarts serving each prompt whose add was answered 201, never one whose add was not, and
never one answered deleted. Without the file, a restart serves the folders of the root, as before.
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

from softprompt.io.atomic import atomic_write_text

FILE = ".served.json"


class Registry:
    def __init__(self, root: Path) -> None:
        self.path = root / FILE
        self._lock = threading.Lock()

    def read(self) -> tuple[dict[str, str], set[str]]:
        """(added: name -> folder relative to the root, removed names); empty when there is no usable file."""
        if not self.path.exists():
            return {}, set()
        try:
            data = json.loads(self.path.read_text())
            added = {str(k): str(v) for k, v in data.get("added", {}).items()}
            return added, {str(n) for n in data.get("removed", [])}
        except (OSError, ValueError, TypeError, AttributeError) as e:
            warnings.warn(
                f"{self.path}: unreadable ({e}); serving the folders of {self.path.parent}", stacklevel=2
            )
            return {}, set()

    def added(self, name: str, folder: Path) -> None:
        with self._lock:
            added, removed = self.read()
            added[name] = str(folder.relative_to(self.path.parent))
            removed.discard(name)
            self._write(added, removed)

    def removed(self, name: str) -> None:
        with self._lock:
            added, removed = self.read()
            added.pop(name, None)
            removed.add(name)
            self._write(added, removed)

    def _write(self, added: dict[str, str], removed: set[str]) -> None:
        atomic_write_text(self.path, json.dumps({"added": added, "removed": sorted(removed)}, indent=1))
