#!/usr/bin/env python3
"""Check that a fastasgi sdist can build the extension from source and carries no build output.

    python3 scripts/check-sdist.py dist/fastasgi-X.Y.Z.tar.gz [--source-tree .]

Checks:
- the files a from-source build needs: the Cython sources (.pyx and every .pxd), the vendored
  llhttp (header, C sources, LICENSE-MIT, VERSION note) and nghttp2 (headers, C sources,
  COPYING, VERSION note), setup.py, pyproject.toml and the readme it names, the version module, py.typed and the .pyi files;
- the version is the same in PKG-INFO, the sdist's name and src/fastasgi/_version.py;
- no build artefacts: no compiled objects (.so/.pyd/.o/...), no Cython output (.c/.html under
  src/), no build/ or dist/ tree, no caches, no egg-info other than setuptools' own;
- with --source-tree: every file of the checkout under src/, csrc/, tests/ and benchmarks/ (what git tracks
  or would track) is in the sdist, so nothing added to the tree is silently left out.

Exits non-zero with one line per problem. Needs Python 3.11+ (tomllib).
"""

from __future__ import annotations

import argparse
import email.parser
import fnmatch
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path, PurePosixPath

REQUIRED = [
    "PKG-INFO",
    "pyproject.toml",
    "setup.py",
    "src/fastasgi/_version.py",
    "src/fastasgi/py.typed",
    "src/fastasgi/_http/_core.pyx",
    "src/fastasgi/_http/_core.pyi",
    "csrc/llhttp/LICENSE-MIT",
    "csrc/llhttp/VERSION",
    "csrc/llhttp/include/llhttp.h",
    "csrc/llhttp/src/llhttp.c",
    "csrc/llhttp/src/api.c",
    "csrc/llhttp/src/http.c",
    "csrc/nghttp2/COPYING",
    "csrc/nghttp2/VERSION",
    "csrc/nghttp2/includes/nghttp2/nghttp2.h",
    "csrc/nghttp2/includes/nghttp2/nghttp2ver.h",
    "csrc/nghttp2/nghttp2_session.c",
    "csrc/nghttp2/nghttp2_hd.c",
]

# Paths (relative to the sdist's top directory) that must never be shipped.
FORBIDDEN = [
    ("*.so", "compiled extension"),
    ("*.pyd", "compiled extension"),
    ("*.dylib", "compiled library"),
    ("*.o", "object file"),
    ("*.a", "static library"),
    ("*.py[cod]", "bytecode"),
    ("*/__pycache__/*", "bytecode cache"),
    ("src/*.c", "Cython output (regenerated at build time)"),
    ("src/*.cpp", "Cython output (regenerated at build time)"),
    ("src/*.html", "Cython annotation output"),
    ("build/*", "build directory"),
    ("dist/*", "dist directory"),
    ("wheelhouse/*", "wheel output directory"),
    ("*.whl", "wheel"),
    (".git/*", "git metadata"),
    ("*/.pytest_cache/*", "pytest cache"),
    (".pytest_cache/*", "pytest cache"),
]
# setuptools always writes its metadata here; any other egg-info is a stray build artefact.
ALLOWED_EGG_INFO = "src/fastasgi.egg-info/"


def sdist_members(path: Path) -> tuple[str, dict[str, tarfile.TarInfo]]:
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    if len(tops) != 1:
        sys.exit(f"{path}: expected one top-level directory, found {sorted(tops)}")
    (top,) = tops
    files = {}
    for m in members:
        rel = PurePosixPath(m.name).relative_to(top)
        if m.isfile() and str(rel) != ".":
            files[str(rel)] = m
    return top, files


def read_member(path: Path, top: str, name: str) -> str:
    with tarfile.open(path) as tar:
        f = tar.extractfile(f"{top}/{name}")
        assert f is not None
        return f.read().decode("utf-8")


# Tree files left out of the sdist on purpose (MANIFEST.in prunes them): the results of
# benchmark runs on our machine, which the README shows.
NOT_SHIPPED = ["benchmarks/results/*"]


def tree_files(root: Path) -> list[str]:
    """Files of the checkout that belong in the sdist: what git tracks or would track."""
    dirs = ["src", "csrc", "tests", "benchmarks"]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "--", *dirs],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # --cached lists files deleted from the work tree too; only existing files count
        return [p for p in out.splitlines() if (root / p).is_file()]
    except (OSError, subprocess.CalledProcessError):
        # not a git checkout: walk the tree and leave out what .gitignore covers
        found = []
        for d in dirs:
            for p in (root / d).rglob("*"):
                rel = p.relative_to(root).as_posix()
                if p.is_file() and not any(fnmatch.fnmatch(rel, pat) for pat, _ in FORBIDDEN):
                    found.append(rel)
        return found


def check(sdist: Path, source_tree: Path | None) -> list[str]:
    problems = []
    top, files = sdist_members(sdist)

    for name in REQUIRED:
        if name not in files:
            problems.append(f"missing: {name}")
    pxds = [n for n in files if n.startswith("src/fastasgi/") and n.endswith(".pxd")]
    if not pxds:
        problems.append("missing: no .pxd under src/fastasgi/")
    # every part _core.pyx includes must ship, or the sdist cannot build
    core = (
        read_member(sdist, top, "src/fastasgi/_http/_core.pyx")
        if "src/fastasgi/_http/_core.pyx" in files
        else ""
    )
    for line in core.splitlines():
        if line.startswith("include "):
            part = "src/fastasgi/_http/" + line.split('"')[1]
            if part not in files:
                problems.append(f"missing: {part} (included by _core.pyx)")

    pyproject = tomllib.loads(read_member(sdist, top, "pyproject.toml"))
    readme = pyproject["project"].get("readme")
    if isinstance(readme, dict):
        readme = readme.get("file")
    if readme and readme not in files:
        problems.append(f"missing: {readme} (project.readme)")

    # one version everywhere
    if "PKG-INFO" in files and "src/fastasgi/_version.py" in files:
        meta = email.parser.Parser().parsestr(read_member(sdist, top, "PKG-INFO"))
        m = re.search(
            r'^__version__\s*=\s*"([^"]+)"', read_member(sdist, top, "src/fastasgi/_version.py"), re.M
        )
        source_version = m.group(1) if m else None
        if meta["Version"] != source_version:
            problems.append(f"version: PKG-INFO says {meta['Version']}, _version.py says {source_version}")
        if top != f"fastasgi-{meta['Version']}":
            problems.append(f"version: top directory {top!r} does not match version {meta['Version']}")
        for lic in meta.get_all("License-File") or []:
            if lic not in files:
                problems.append(f"missing: {lic} (License-File in PKG-INFO)")

    for name in sorted(files):
        if name.endswith(".egg-info") or ".egg-info/" in name:
            if not name.startswith(ALLOWED_EGG_INFO):
                problems.append(f"artefact: {name} (stray egg-info)")
            continue
        for pattern, what in FORBIDDEN:
            if fnmatch.fnmatch(name, pattern):
                problems.append(f"artefact: {name} ({what})")
                break

    if source_tree is not None:
        for rel in tree_files(source_tree):
            if any(fnmatch.fnmatch(rel, pat) for pat, _ in FORBIDDEN):
                continue  # an artefact in the tree (e.g. not yet ignored) is not expected to ship
            if any(fnmatch.fnmatch(rel, pat) for pat in NOT_SHIPPED):
                continue
            if rel not in files:
                problems.append(f"missing: {rel} (in the source tree, not in the sdist)")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sdist", type=Path)
    ap.add_argument("--source-tree", type=Path, help="checkout the sdist was built from")
    args = ap.parse_args()
    problems = check(args.sdist, args.source_tree)
    _, files = sdist_members(args.sdist)
    if problems:
        for p in problems:
            print(f"check-sdist: {p}", file=sys.stderr)
        print(f"check-sdist: {args.sdist.name}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    size = args.sdist.stat().st_size
    print(f"check-sdist: {args.sdist.name}: OK ({len(files)} files, {size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
