"""The Binder configuration: CPU-only torch from PyTorch's CPU index, then nasviz installed with
every requirement resolved against the pins the tests ran with (constraints.txt)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parents[1]
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _pins() -> dict[str, Version]:
    """constraints.txt as name -> pinned version."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            [spec] = req.specifier
            assert spec.operator == "==", f"constraints.txt: {line!r} is not a pin"
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def _binder_requirements() -> tuple[list[str], list[Requirement]]:
    """binder/requirements.txt as (pip options, requirements)."""
    options, reqs = [], []
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-"):
            options.append(line)
        elif line:
            reqs.append(Requirement(line))
    return options, reqs


def _satisfied_by_pins(req: Requirement, pins: dict[str, Version]) -> str | None:
    """Why ``req`` does not resolve against the pins (None when it does)."""
    name = canonicalize_name(req.name)
    if name not in pins:
        return f"{req.name} has no pin in constraints.txt"
    if not req.specifier.contains(pins[name], prereleases=True):
        return f"{req} excludes the pinned {req.name}=={pins[name]}"
    return None


def test_torch_comes_from_the_cpu_index_at_the_tested_version():
    options, reqs = _binder_requirements()
    assert f"--extra-index-url {CPU_INDEX}" in options or f"--index-url {CPU_INDEX}" in options
    [torch] = [r for r in reqs if canonicalize_name(r.name) == "torch"]
    [spec] = torch.specifier
    installed = Version(spec.version)
    assert spec.operator == "==" and installed.local == "cpu", f"{torch}: not a CPU-only build"
    # the postBuild install runs with constraints.txt: its torch pin must accept the CPU build
    pinned = _pins()["torch"]
    assert installed.public == str(pinned), f"binder installs torch {installed}, tests ran {pinned}"


def test_every_binder_requirement_resolves_against_the_pins():
    pins = _pins()
    _, reqs = _binder_requirements()
    for req in reqs:
        [spec] = req.specifier
        name = canonicalize_name(req.name)
        # an exact local build (2.13.0+cpu) must satisfy the pin's public version (==2.13.0)
        assert name in pins and Requirement(f"{name}=={pins[name]}").specifier.contains(
            Version(spec.version), prereleases=True
        ), f"{req} conflicts with constraints.txt"


def _post_build_install() -> list[str]:
    """The arguments of postBuild's one ``pip install`` command."""
    lines = [
        line.strip()
        for line in (BINDER / "postBuild").read_text().splitlines()
        if re.match(r"\s*(python -m )?pip install", line)
    ]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def test_post_build_installs_nasviz_with_the_tested_pins():
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK)
    assert subprocess.run(["bash", "-n", str(post)], capture_output=True).returncode == 0
    args = _post_build_install()
    constraints = [args[i + 1] for i, a in enumerate(args) if a in ("-c", "--constraint")]
    assert constraints == ["constraints.txt"], f"postBuild installs without the pins: {args}"
    assert (ROOT / constraints[0]).is_file()
    [target] = [a for a in args if a.startswith(".[")]
    extras = re.fullmatch(r"\.\[([\w,-]+)\]", target).group(1).split(",")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    assert set(extras) <= set(optional), f"postBuild asks for unknown extras {extras}"
    # everything that install pulls in directly resolves against the pins
    pins = _pins()
    wanted = [*project["dependencies"], *(d for e in extras for d in optional[e])]
    problems = [why for d in wanted if (why := _satisfied_by_pins(Requirement(d), pins))]
    assert problems == []


def test_binder_python_is_one_nasviz_supports():
    runtime = (BINDER / "runtime.txt").read_text().strip()
    version = re.fullmatch(r"python-(\d+\.\d+)", runtime).group(1)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert Requirement(f"python{project['requires-python']}").specifier.contains(f"{version}.0")
