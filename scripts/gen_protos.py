"""Regenerate the Python code and stubs for proto/ with the pinned protoc, or check it for drift."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROTO_ROOT = REPO_ROOT / "proto"
# Only sources under this top-level directory are ours; it is also the import root.
SOURCE_TOP = "sonobridge"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
# Must equal the grpcio-tools pin in the root pyproject: another protoc emits different code.
PINNED_GRPCIO_TOOLS = "1.76.0"
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


def generate_to(proto_root: Path, out_dir: Path) -> list[str]:
    """Generate all code for proto_root into out_dir; return the sources used."""
    check_toolchain()
    sources = find_sources(proto_root)
    run_protoc(proto_root, sources, out_dir)
    return sources


def drift(proto_root: Path) -> list[str]:
    """Return a line per generated file that is stale, missing or differs from a fresh run."""
    with tempfile.TemporaryDirectory(prefix="sonobridge-protos-") as tmp:
        fresh_root = Path(tmp)
        sources = generate_to(proto_root, fresh_root)
        fresh = generated_files(fresh_root)
        committed = generated_files(proto_root)
        problems = [f"missing: {path}" for path in sorted(fresh - committed)]
        problems += [
            f"differs: {path}"
            for path in sorted(fresh & committed)
            if (fresh_root / path).read_bytes() != (proto_root / path).read_bytes()
        ]
        problems += [f"stale (no .proto source): {path}" for path in sorted(committed - fresh)]
        problems += [
            f"missing: {d}/__init__.py"
            for d in sorted(package_dirs(sources))
            if not (proto_root / d / "__init__.py").is_file()
        ]
    return problems


def regenerate(proto_root: Path) -> list[str]:
    """Bring proto_root's generated code up to date; return a line per file changed."""
    with tempfile.TemporaryDirectory(prefix="sonobridge-protos-") as tmp:
        fresh_root = Path(tmp)
        sources = generate_to(proto_root, fresh_root)
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
        for d in sorted(package_dirs(sources)):
            init = proto_root / d / "__init__.py"
            if not init.is_file():
                init.write_text(init_text(d), encoding="utf-8")
                changes.append(f"wrote: {d}/__init__.py")
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
