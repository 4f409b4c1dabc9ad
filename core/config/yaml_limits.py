"""Bounds on a YAML document, checked on the composed node graph *before* anything is constructed.

Why on the node graph: PyYAML composes an alias as a second reference to the anchored node, so a
"billion laughs" document is small as a graph and only explodes when something walks it as a tree
(structuring, merging, dumping). Counting the tree size per node with memoisation costs one pass
over the graph, so a 9x9 alias bomb is refused in milliseconds instead of eating gigabytes.

The same pass refuses what plugtron's config cannot hold: non-string keys (``1: 2``), duplicate
keys, and a recursive alias (``a: &a [*a]``).
"""

from __future__ import annotations

from typing import Dict, List

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A real config is a few KB, a few hundred values (a blend of 1000 weighted files: 2000) and < 10
# levels deep; these leave wide margins while keeping the worst case around a second: pure-Python
# PyYAML composes about 15,000 values per second on one core.
MAX_BYTES = 1024 * 1024
MAX_NODES = 20_000
MAX_DEPTH = 32

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"


class LimitError(Exception):
    """A bound or a key rule was violated at ``mark`` (a ``yaml.Mark`` or None)."""

    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message, self.mark = message, mark


class BoundedComposer:
    """Mixin for a PyYAML loader: counts nesting depth and nodes while composing, so a deep or huge
    document stops early (PyYAML's composer recurses per level: deep input would otherwise end in
    RecursionError)."""

    def compose_node(self, parent, index):  # noqa: D401 - PyYAML API
        self._plugtron_depth = getattr(self, "_plugtron_depth", 0) + 1
        self._plugtron_nodes = getattr(self, "_plugtron_nodes", 0) + 1
        try:
            if self._plugtron_depth > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels (the limit)", self.peek_event().start_mark)
            if self._plugtron_nodes > MAX_NODES:
                raise LimitError(f"more than {MAX_NODES} values (the limit)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._plugtron_depth -= 1


def _children(node: Node) -> List[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_keys(node: MappingNode) -> None:
    seen: Dict[str, Node] = {}
    for key, _ in node.value:
        if key.tag == MERGE_TAG:
            continue
        if not isinstance(key, ScalarNode):
            kind = "a sequence" if isinstance(key, SequenceNode) else "a mapping"
            raise LimitError(f"keys must be strings, got {kind}", key.start_mark)
        if key.tag != STR_TAG:
            raise LimitError(f"keys must be strings, got {key.value!r} (quote it to use it as a name)", key.start_mark)
        if key.value in seen:
            raise LimitError(f"duplicate key {key.value!r} (first at line {seen[key.value].start_mark.line + 1})",
                             key.start_mark)
        seen[key.value] = key


def check_graph(root: Node) -> None:
    """Expanded size and depth of ``root`` (aliases counted every time they are used), key rules.

    Iterative post-order walk with memoisation: cost is linear in the graph, not in the tree."""
    size: Dict[int, int] = {}
    depth: Dict[int, int] = {}
    on_path = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_NODES:
                raise LimitError(f"expands to more than {MAX_NODES} values (the limit; aliases count each time "
                                 "they are used)", node.start_mark)
            if depth[key] > MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels once aliases are expanded (the limit)",
                                 node.start_mark)
            continue
        if key in size:
            continue
        if key in on_path:
            raise LimitError("recursive alias (an anchor used inside itself)", node.start_mark)
        if isinstance(node, MappingNode):
            _check_keys(node)
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def describe_mark(source: str, mark) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if isinstance(mark, yaml.Mark) else source
