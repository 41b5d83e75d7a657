#!/usr/bin/env python3
"""Fails when two files of the crate depend on each other, directly or through others, or when
a lower layer names the HTTP framework.

A file depends on the files its paths name: `crate::a::b::C`, `super::x`, `self::x`, and a
child module's name (`child::X` in the file that declares `mod child`). A path resolves to the
deepest file it reaches (`crate::store::users::Credentials` -> src/store/users/mod.rs), and
through a re-export to the file that defines the item (`pub use email::Email` in
src/domain/mod.rs makes `crate::domain::Email` name src/domain/email.rs). Module declarations
(`mod x;`) and re-exports are structure, not dependencies. Comments and string literals are
ignored. The same loops are reported among top-level modules too.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# Layers that must not know the HTTP framework (they are used by the HTTP layer, not the reverse).
NO_HTTP = {"accounts", "auth", "domain", "config", "store", "mail"}
# The HTTP layer's own modules, which those lower layers must not use either.
HTTP_MODULES = {"app_state", "client_ip", "envelope", "routes", "startup", "telemetry"}
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(code: str) -> str:
    # Unit tests sit in an inline `mod tests` at the end of a file, where `super::` is the
    # file itself; they are not part of the dependency graph.
    code = re.sub(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*", "", code, flags=re.S)
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = re.sub(r"'(?:\\.|[^'\\])'", "' '", code)  # char literals, so '"' opens no string
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', code)


def paths_at(code: str, at: int) -> list[list[str]]:
    """The paths that start at `at`: one for `a::b::C`, several for `{a::b, c}` groups."""
    match = re.match(rf"(?:{IDENT}(?:\s*::\s*{IDENT})*)?(\s*(?:::)?\s*\{{)?", code[at:])
    if not match or not match.group(0):
        return []
    head = [p.strip() for p in match.group(0).rstrip("{").split("::") if p.strip()]
    if not match.group(1):
        return [head]
    start = at + match.end()  # just after `{`
    depth, item, items = 1, "", []
    for ch in code[start:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and ch == ",":
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    found = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item == "self" or item.startswith("self "):
            found.append(head)
            continue
        found.extend(head + p for p in paths_at(item, 0) if p)
    return found


class Crate:
    def __init__(self, src: pathlib.Path = SRC) -> None:
        self.src = src
        # The crate roots only declare modules and run them.
        self.files = sorted(p for p in src.rglob("*.rs") if p.parent != src or p.stem not in ("lib", "main"))
        # Module path (tuple) -> file.
        self.modules: dict[tuple[str, ...], pathlib.Path] = {}
        for path in self.files:
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "mod":
                parts.pop()
            self.modules[tuple(parts)] = path

        # File -> re-exported name -> the absolute module path of the item it names.
        self.reexports: dict[pathlib.Path, dict[str, tuple[str, ...]]] = {}
        for path in self.files:
            code = strip(path.read_text())
            me = self.module_path(path)
            names: dict[str, tuple[str, ...]] = {}
            for match in re.finditer(rf"\bpub(?:\([^)]*\))?\s+use\s+", code):
                for parts in paths_at(code, match.end()):
                    absolute = self.absolute(me, parts, code)
                    if absolute:
                        names[absolute[-1]] = absolute
            self.reexports[path] = names

    def absolute(self, me: tuple[str, ...], parts: list[str], code: str) -> tuple[str, ...] | None:
        """`parts` as written in module `me`, from the crate root; None for other crates."""
        if not parts:
            return None
        root, rest = parts[0], parts[1:]
        if root == "crate":
            return tuple(rest)
        if root == "super":
            base = me[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
            return base + tuple(rest)
        if root == "self":
            return me + tuple(rest)
        if re.search(rf"\bmod\s+{root}\s*;", code):
            return me + (root,) + tuple(rest)
        return None

    def module_path(self, path: pathlib.Path) -> tuple[str, ...]:
        return next(m for m, p in self.modules.items() if p == path)

    def resolve(self, parts: tuple[str, ...], depth: int = 0) -> pathlib.Path | None:
        module = parts
        while module:
            if module in self.modules:
                path = self.modules[module]
                rest = parts[len(module):]
                target = self.reexports.get(path, {}).get(rest[0]) if rest else None
                if target and depth < 10:
                    return self.resolve(target + rest[1:], depth + 1) or path
                return path
            module = module[:-1]
        return None

    def deps(self, path: pathlib.Path) -> set[pathlib.Path]:
        me = self.module_path(path)
        code = strip(path.read_text())
        # A re-export passes a name through; whoever uses the name depends on its source.
        code = re.sub(r"\bpub(?:\([^)]*\))?\s+use\s+[^;]*;", "", code)
        targets: set[pathlib.Path] = set()
        for match in re.finditer(rf"(?<![\w:])(crate|super|self|{IDENT})\s*::\s*", code):
            for parts in paths_at(code, match.end()):
                absolute = self.absolute(me, [match.group(1)] + parts, code)
                target = self.resolve(absolute) if absolute else None
                if target is not None and target != path:
                    targets.add(target)
        return targets


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
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

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def top(path: str) -> str:
    return pathlib.Path(path).parts[1].removesuffix(".rs")


def check(src: pathlib.Path) -> tuple[list[str], int, int]:
    """The problems of the crate at `src`, and how many files and modules it has."""
    crate = Crate(src)
    edges: dict[str, set[str]] = {}
    problems: list[str] = []
    for path in crate.files:
        name = str(path.relative_to(src.parent))
        edges[name] = {str(t.relative_to(src.parent)) for t in crate.deps(path)}
        module = top(name)
        if module in NO_HTTP and re.search(r"\bactix_\w+", strip(path.read_text())):
            problems.append(f"{name}: names the HTTP framework")
    modules: dict[str, set[str]] = {}
    for name, deps in edges.items():
        modules.setdefault(top(name), set()).update(top(d) for d in deps if top(d) != top(name))
    for module in sorted(NO_HTTP & modules.keys()):
        for dep in sorted(modules[module] & HTTP_MODULES):
            problems.append(f"{module} -> {dep}: a lower layer uses the HTTP layer")
    loops = strongly_connected(edges) + strongly_connected(modules)
    for loop in loops:
        graph = edges if loop[0] in edges else modules
        inner = {m: sorted(graph[m] & set(loop)) for m in loop}
        problems.append("cycle: " + "; ".join(f"{m} -> {', '.join(d)}" for m, d in inner.items()))
    return problems, len(edges), len(modules)


def self_test() -> None:
    """The check finds what it is for, in a small crate made for it."""
    import tempfile

    cases = {
        "two files": {"a.rs": "use crate::b::B; pub struct A;", "b.rs": "pub struct B(crate::a::A);"},
        "a parent and its child": {
            "m/mod.rs": "mod c; use c::C; pub struct P;",
            "m/c.rs": "use super::P; pub struct C;",
        },
        "through a re-export": {
            "d/mod.rs": "mod x; mod y; pub use x::X;",
            "d/x.rs": "use super::y::Y; pub struct X;",
            "d/y.rs": "use crate::d::X; pub struct Y;",
        },
        "a group import": {"e.rs": "use crate::{f::F}; pub struct E;", "f.rs": "use crate::{e::E}; pub struct F;"},
        "a lower layer on HTTP": {"store.rs": "use actix_web::HttpRequest;"},
    }
    for name, files in cases.items():
        with tempfile.TemporaryDirectory() as root:
            src = pathlib.Path(root) / "src"
            for path, code in files.items():
                (src / path).parent.mkdir(parents=True, exist_ok=True)
                (src / path).write_text(code)
            problems, _, _ = check(src)
            assert problems, f"the check misses {name}"
    with tempfile.TemporaryDirectory() as root:
        src = pathlib.Path(root) / "src"
        src.mkdir()
        (src / "a.rs").write_text("use crate::b::B; // crate::a in a comment\nconst S: &str = \"crate::a\";")
        (src / "b.rs").write_text("pub struct B;\n#[cfg(test)]\nmod tests { use crate::a; }")
        problems, _, _ = check(src)
        assert not problems, f"comments, strings and unit tests are not dependencies: {problems}"


def main() -> int:
    self_test()
    problems, files, modules = check(SRC)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(
        f"no cycles among {files} files and {modules} top-level modules; "
        f"{', '.join(sorted(NO_HTTP))} free of HTTP types (self-test passed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
