#!/usr/bin/env python3
"""Fails when the crate's top-level modules depend on each other in a loop, or when a lower
layer names the HTTP framework.

A module's dependencies are the top-level modules its files name through `crate::` paths
(`use crate::a::b`, `use crate::{a, b::c}`, `crate::a::f()` in code); `super::` stays inside
a module. Comments and string literals are ignored.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# Layers that must not know the HTTP framework (they are used by the HTTP layer, not the reverse).
NO_HTTP = {"domain", "config", "store", "mail"}
# The HTTP layer's own modules, which those lower layers must not use either.
HTTP_MODULES = {"app_state", "client_ip", "error", "routes", "startup", "telemetry"}


def strip(code: str) -> str:
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', code)


def names_after(code: str, at: int) -> list[str]:
    """The top-level names of a path that starts at `at` (just after `crate::`)."""
    if code[at] != "{":
        match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", code[at:])
        return [match.group(0)] if match else []
    depth, item, names = 0, "", []
    for ch in code[at:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and ch == ",":
            names.append(item)
            item = ""
        else:
            item += ch
    names.append(item)
    first = (re.match(r"\s*([A-Za-z_]\w*)", n) for n in names)
    return [m.group(1) for m in first if m]


def module_of(path: pathlib.Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".rs")


def graph() -> tuple[dict[str, set[str]], list[str]]:
    edges: dict[str, set[str]] = {}
    http: list[str] = []
    for path in sorted(SRC.rglob("*.rs")):
        module = module_of(path)
        if module in ("lib", "main"):
            continue
        code = strip(path.read_text())
        deps = edges.setdefault(module, set())
        for match in re.finditer(r"\bcrate::", code):
            deps.update(n for n in names_after(code, match.end()) if n != module)
        if module in NO_HTTP and re.search(r"\bactix_\w+", code):
            http.append(f"{path.relative_to(SRC.parent)}: names the HTTP framework")
    for module in sorted(NO_HTTP & edges.keys()):
        for dep in sorted(edges[module] & HTTP_MODULES):
            http.append(f"{module} -> {dep}: a lower layer uses the HTTP layer")
    return edges, http


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    edges, http = graph()
    loops = cycles(edges)
    for loop in loops:
        inner = {m: sorted(edges[m] & set(loop)) for m in loop}
        print("module cycle: " + "; ".join(f"{m} -> {', '.join(d)}" for m, d in inner.items()))
    for problem in http:
        print(problem)
    if loops or http:
        return 1
    print(f"no cycles among {len(edges)} top-level modules; {', '.join(sorted(NO_HTTP))} free of HTTP types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
