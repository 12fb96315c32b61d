"""Regenerate the Python code and stubs for proto/ with the pinned protoc, or check it for drift."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import descriptor_pb2

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROTO_ROOT = REPO_ROOT / "proto"
# Only sources under this top-level directory are ours; it is also the import root.
SOURCE_TOP = "sonobridge"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
# Must equal the grpcio-tools pin in the root pyproject: another protoc emits different code.
PINNED_GRPCIO_TOOLS = "1.76.0"
# Every field and enum value number ever published, kept beside the sources (not packaged).
WIRE_LOCK = "wire_numbers.lock.json"
DESCRIPTOR_SET = "descriptor_set.pb"
PACKAGE_LINE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)\s*;", re.MULTILINE)


class GenerationError(Exception):
    """Generation cannot proceed; the message says why."""


def check_toolchain() -> None:
    """Refuse to run with a grpcio-tools other than the pinned one."""
    try:
        installed = importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError as exc:
        raise GenerationError("grpcio-tools is not installed; run `uv sync`") from exc
    if installed != PINNED_GRPCIO_TOOLS:
        raise GenerationError(
            f"grpcio-tools {installed} is installed but {PINNED_GRPCIO_TOOLS} is pinned; "
            "run `uv sync` so generated code matches what is committed"
        )


def find_sources(proto_root: Path) -> list[str]:
    """Return every .proto under proto_root/sonobridge, relative and sorted."""
    top = proto_root / SOURCE_TOP
    sources = sorted(p.relative_to(proto_root).as_posix() for p in top.rglob("*.proto"))
    if not sources:
        raise GenerationError(f"no .proto files under {top}")
    for source in sources:
        check_package_matches_directory(proto_root, source)
    return sources


def check_package_matches_directory(proto_root: Path, source: str) -> None:
    """Fail unless the file's `package` equals its directory with dots."""
    text = (proto_root / source).read_text(encoding="utf-8")
    match = PACKAGE_LINE.search(text)
    expected = source.rsplit("/", 1)[0].replace("/", ".")
    if match is None:
        raise GenerationError(f"{source}: no package statement (expected `package {expected};`)")
    if match.group(1) != expected:
        raise GenerationError(
            f"{source}: package {match.group(1)} does not match its directory "
            f"(expected `package {expected};`)"
        )


def run_protoc(proto_root: Path, sources: list[str], out_dir: Path) -> None:
    """Generate *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for sources into out_dir."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--descriptor_set_out={out_dir / DESCRIPTOR_SET}",
        *sources,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GenerationError(f"protoc failed:\n{result.stderr.strip()}")
    if result.stderr.strip():
        # Warnings (e.g. unused imports) would otherwise slip in unnoticed.
        raise GenerationError(f"protoc warned:\n{result.stderr.strip()}")


def generated_files(root: Path) -> set[str]:
    """Return generated files under root/sonobridge, as paths relative to root."""
    top = root / SOURCE_TOP
    if not top.is_dir():
        return set()
    return {
        p.relative_to(root).as_posix()
        for p in top.rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    }


def package_dirs(sources: list[str]) -> set[str]:
    """Return the package directories below sonobridge/api that need an __init__.py."""
    dirs: set[str] = set()
    for source in sources:
        parts = source.split("/")[:-1]
        # sonobridge/ is a namespace package shared with other distributions and
        # sonobridge/api/__init__.py is hand-written; only the levels below are ours.
        for depth in range(3, len(parts) + 1):
            dirs.add("/".join(parts[:depth]))
    return dirs


def init_text(package_dir: str) -> str:
    """Return the contents of a generated package's __init__.py."""
    dotted = package_dir.replace("/", ".")
    return f'"""Generated contracts of {dotted} (regenerate with `make protos`)."""\n'


@dataclass
class WireShape:
    """Numbers in use and reserved in one message or enum."""

    numbers: dict[str, int] = field(default_factory=dict)
    reserved_ranges: list[range] = field(default_factory=list)
    reserved_names: set[str] = field(default_factory=set)

    def reserves(self, name: str, number: int) -> bool:
        """Return whether both the name and the number are reserved."""
        in_range = any(number in numbers for numbers in self.reserved_ranges)
        return in_range and name in self.reserved_names


def wire_shapes(descriptor_set: bytes, sources: list[str]) -> dict[str, WireShape]:
    """Return the wire shape of every message and enum declared in sources."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    shapes: dict[str, WireShape] = {}

    def visit_enum(prefix: str, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        shapes[f"{prefix}.{enum.name}"] = WireShape(
            {value.name: value.number for value in enum.value},
            # Enum reserved ranges are inclusive, message ones exclusive.
            [range(r.start, r.end + 1) for r in enum.reserved_range],
            set(enum.reserved_name),
        )

    def visit_message(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{prefix}.{message.name}"
        if message.options.map_entry:
            return
        shapes[name] = WireShape(
            {f.name: f.number for f in message.field},
            [range(r.start, r.end) for r in message.reserved_range],
            set(message.reserved_name),
        )
        for nested in message.nested_type:
            visit_message(name, nested)
        for enum in message.enum_type:
            visit_enum(name, enum)

    for file in files.file:
        if file.name in sources:
            for message in file.message_type:
                visit_message(file.package, message)
            for enum in file.enum_type:
                visit_enum(file.package, enum)
    return shapes


def read_wire_lock(proto_root: Path) -> dict[str, dict[str, int]]:
    """Return the recorded numbers, or nothing when no lock exists yet."""
    path = proto_root / WIRE_LOCK
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GenerationError(f"{path}: not valid JSON ({exc})") from exc
    valid = isinstance(raw, dict) and all(
        isinstance(numbers, dict) and all(isinstance(n, int) for n in numbers.values())
        for numbers in raw.values()
    )
    if not valid:
        raise GenerationError(f"{path}: expected {{type name: {{field name: number}}}}")
    return {
        str(t): {str(name): int(n) for name, n in numbers.items()} for t, numbers in raw.items()
    }


def wire_lock_text(lock: dict[str, dict[str, int]]) -> str:
    """Serialise the lock deterministically."""
    return json.dumps(lock, indent=2, sort_keys=True) + "\n"


def wire_breaks(lock: dict[str, dict[str, int]], shapes: dict[str, WireShape]) -> list[str]:
    """Return a line per recorded number that was changed or dropped without reserving it."""
    problems = []
    for type_name, numbers in sorted(lock.items()):
        shape = shapes.get(type_name)
        if shape is None:
            problems.append(f"{type_name}: removed; published types stay until the next major")
            continue
        for name, number in sorted(numbers.items()):
            now = shape.numbers.get(name)
            if now is None and not shape.reserves(name, number):
                problems.append(
                    f"{type_name}.{name} = {number}: removed without "
                    f'`reserved {number};` and `reserved "{name}";`'
                )
            elif now is not None and now != number:
                problems.append(f"{type_name}.{name}: renumbered {number} -> {now}")
    return problems


def extended_lock(
    lock: dict[str, dict[str, int]], shapes: dict[str, WireShape]
) -> dict[str, dict[str, int]]:
    """Return the lock with numbers of new fields and enum values added; old entries stay."""
    merged = {type_name: dict(numbers) for type_name, numbers in lock.items()}
    for type_name, shape in shapes.items():
        recorded = merged.setdefault(type_name, {})
        for name, number in shape.numbers.items():
            recorded.setdefault(name, number)
    return merged


@dataclass
class Generation:
    """A fresh generation in a temporary directory, with its wire lock verdict."""

    root: Path
    sources: list[str]
    breaks: list[str]
    lock: dict[str, dict[str, int]]


def generate_to(proto_root: Path, out_dir: Path) -> Generation:
    """Generate all code for proto_root into out_dir and compare numbers with the wire lock."""
    check_toolchain()
    sources = find_sources(proto_root)
    run_protoc(proto_root, sources, out_dir)
    shapes = wire_shapes((out_dir / DESCRIPTOR_SET).read_bytes(), sources)
    lock = read_wire_lock(proto_root)
    return Generation(out_dir, sources, wire_breaks(lock, shapes), extended_lock(lock, shapes))


def drift(proto_root: Path) -> list[str]:
    """Return a line per generated file that is stale, missing or differs from a fresh run."""
    with tempfile.TemporaryDirectory(prefix="sonobridge-protos-") as tmp:
        fresh_root = Path(tmp)
        generation = generate_to(proto_root, fresh_root)
        fresh = generated_files(fresh_root)
        committed = generated_files(proto_root)
        problems = [f"wire break: {line}" for line in generation.breaks]
        problems += [f"missing: {path}" for path in sorted(fresh - committed)]
        problems += [
            f"differs: {path}"
            for path in sorted(fresh & committed)
            if (fresh_root / path).read_bytes() != (proto_root / path).read_bytes()
        ]
        problems += [f"stale (no .proto source): {path}" for path in sorted(committed - fresh)]
        problems += [
            f"missing: {d}/__init__.py"
            for d in sorted(package_dirs(generation.sources))
            if not (proto_root / d / "__init__.py").is_file()
        ]
        if generation.lock != read_wire_lock(proto_root):
            problems.append(f"differs: {WIRE_LOCK} (new numbers not recorded)")
    return problems


def regenerate(proto_root: Path) -> list[str]:
    """Bring proto_root's generated code up to date; return a line per file changed."""
    with tempfile.TemporaryDirectory(prefix="sonobridge-protos-") as tmp:
        fresh_root = Path(tmp)
        generation = generate_to(proto_root, fresh_root)
        if generation.breaks:
            # Write nothing: committed code must never follow a wire-incompatible source.
            raise GenerationError(
                "wire-incompatible change (never renumber; reserve deleted fields):\n  "
                + "\n  ".join(generation.breaks)
            )
        fresh = generated_files(fresh_root)
        committed = generated_files(proto_root)
        changes = []
        for path in sorted(fresh):
            target = proto_root / path
            new = (fresh_root / path).read_bytes()
            # Rewrite only what changed so unchanged files keep their timestamps.
            if not target.is_file() or target.read_bytes() != new:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(new)
                changes.append(f"wrote: {path}")
        for path in sorted(committed - fresh):
            (proto_root / path).unlink()
            changes.append(f"removed stale: {path}")
        for d in sorted(package_dirs(generation.sources)):
            init = proto_root / d / "__init__.py"
            if not init.is_file():
                init.write_text(init_text(d), encoding="utf-8")
                changes.append(f"wrote: {d}/__init__.py")
        if generation.lock != read_wire_lock(proto_root):
            (proto_root / WIRE_LOCK).write_text(wire_lock_text(generation.lock), encoding="utf-8")
            changes.append(f"wrote: {WIRE_LOCK}")
    return changes


def main(argv: list[str] | None = None) -> int:
    """Run generation or the drift check from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temporary directory and exit 1 listing files that differ",
    )
    parser.add_argument(
        "--proto-root",
        type=Path,
        default=DEFAULT_PROTO_ROOT,
        help="directory holding sonobridge/**/*.proto and the generated code (default: proto/)",
    )
    args = parser.parse_args(argv)
    proto_root = args.proto_root.resolve()
    try:
        if args.check:
            problems = drift(proto_root)
            if problems:
                print("generated code is out of date; run `make protos`:", file=sys.stderr)
                for line in problems:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"generated code under {proto_root} is current")
            return 0
        changes = regenerate(proto_root)
    except GenerationError as exc:
        print(f"gen_protos: {exc}", file=sys.stderr)
        return 2
    for line in changes:
        print(line)
    print(f"{len(changes)} file(s) changed under {proto_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
