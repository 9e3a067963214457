"""The import graph of `kaizen` has no cycles, not even through imports deferred into functions.

import-linter's layers keep rooms in order; this catches cycles between modules of one room (such
as `streams.episode` <-> `streams.recorder` once were), which layers cannot see.
"""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    modules = sorted(m for m in graph.modules if m == "kaizen" or m.startswith("kaizen."))
    edges = {m: sorted(n for n in graph.find_modules_directly_imported_by(m)
                       if n.startswith("kaizen.")) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, []))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_kaizen_import_graph_is_acyclic() -> None:
    graph = grimp.build_graph("kaizen", cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("kaizen", "kaizen.a", "kaizen.b", "kaizen.c"):
        graph.add_module(name)
    graph.add_import(importer="kaizen.a", imported="kaizen.b")
    graph.add_import(importer="kaizen.b", imported="kaizen.a")
    graph.add_import(importer="kaizen.b", imported="kaizen.c")
    assert _cycles(graph) == [["kaizen.a", "kaizen.b"]]
