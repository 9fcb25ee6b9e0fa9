"""The record of a run: what roard stores, what it registers, and what the registry serves.

One set of Structs, versioned. roard keeps the parts of a job's context as msgpack blobs of
these types in its store; the registration payload and the registry's JSON are `Job` itself.
Reply views (roar.protocol) are built from them but are not them: a view can change without
changing what is stored.

Evolving the model: add fields with defaults (an old record then loads with the default), never
rename or retype a field, and bump MODEL_VERSION when a record written by the new code would
mean something else to old code. tests/data keeps records of each version, and a test proves
they still load.
"""

from __future__ import annotations

from typing import Literal

import msgspec

MODEL_VERSION = 1

JobStatus = Literal["running", "complete", "interrupted", "recovered", "partial"]
JobKind = Literal["run", "build"]  # build: a setup step, run first on reproduction
DirtyStatus = Literal[
    "modified", "added", "deleted", "renamed", "untracked", "typechange", "conflicted"
]
TrackerTool = Literal["wandb", "mlflow", "neptune", "tensorboard"]


class DirtyFile(msgspec.Struct):
    path: str  # relative to the repository root
    status: DirtyStatus
    hash: str | None = None  # blake3 of the working-tree content (None: deleted or too large)


class GitState(msgspec.Struct):
    root: str
    commit: str | None = None  # None on an unborn branch
    branch: str | None = None  # None when HEAD is detached
    remotes: dict[str, str] = {}  # name -> URL, credentials removed
    dirty: list[DirtyFile] = []
    clean: bool = True


class Package(msgspec.Struct, array_like=True):
    name: str
    version: str


class Hardware(msgspec.Struct):
    os: str
    kernel: str
    arch: str
    hostname: str
    cpu: str
    cpus: int
    memory_bytes: int
    gpus: list[str] = []


class TrackerRun(msgspec.Struct):
    """An experiment tracker's run that a job wrote (W&B, MLflow, Neptune, TensorBoard)."""

    tool: TrackerTool
    run_id: str | None  # the tool's own run id
    url: str | None  # where to look at it: app URL, MLflow UI/run directory, TensorBoard logdir
    project: str | None  # W&B entity/project, MLflow experiment id (or name), Neptune project
    source: str  # the file or directory (or "env NAME") the facts came from


class FilteredSummary(msgspec.Struct):
    """System files a job touched that are not its inputs or outputs, counted per rule."""

    count: int = 0
    by_rule: dict[str, int] = {}
    paths: list[str] = []  # the first 10,000 (shown with `show --verbose`)


class Process(msgspec.Struct):
    """One process of a job's tree: the program it last ran (argv redacted) and how it ended."""

    pid: int
    ppid: int
    argv: list[str]
    exe: str | None = None
    exit_code: int | None = None
    signal: int | None = None


class SystemPackages(msgspec.Struct):
    """The system packages that own the executables and shared libraries a job used (the ones
    filtered out as system files), as the system's package manager names them."""

    manager: Literal["dpkg", "rpm"]
    packages: list[Package] = []  # "libc6:amd64" 2.36-9+deb12u7; sorted by name
    unowned: int = 0  # system executables and libraries no package owns


class CondaEnv(msgspec.Struct):
    """The conda environment that was active for a job (CONDA_PREFIX), with its packages."""

    prefix: str
    name: str | None = None
    packages: list[Package] = []  # from conda-meta/*.json; sorted by name


class Container(msgspec.Struct):
    """The container a job ran in, as far as it can tell from inside."""

    runtime: str  # docker | podman | kubernetes | lxc | systemd-nspawn | ...
    image: str | None = None  # the image, when the runtime says (podman's .containerenv)
    id: str | None = None  # the container's id, when known


class RunContext(msgspec.Struct):
    """Everything about a job beyond its files: code, environment, machine, processes, and what
    roar could not observe. Secrets are redacted before a RunContext is made."""

    git: GitState | None = None
    env: dict[str, str] = {}  # redacted
    packages: dict[str, list[Package]] = {}  # interpreter path -> distributions it saw
    hardware: Hardware | None = None
    processes: list[Process] = []
    blind_spots: list[str] = []  # sentences: what roar could not observe
    trackers: list[TrackerRun] = []
    external: list[str] = []  # network peers: "93.184.216.34:443 (tcp)"
    filtered: FilteredSummary = msgspec.field(default_factory=FilteredSummary)
    # Beyond Python (added after version 1, with defaults: older records load without them)
    system: SystemPackages | None = None
    conda: CondaEnv | None = None
    container: Container | None = None


class IO(msgspec.Struct):
    """A file a job read (input) or wrote (output), by content."""

    path: str
    hash: str  # blake3 hex of the content read or written
    size: int
    previous: str | None = None  # for an output that replaced a file: the old content's hash


class Usage(msgspec.Struct):
    """What a job used (compute accounting). CPU and memory come from the tracer: wait4's
    rusage of the command's root process, which holds every descendant that was waited for
    (as `time` reports), plus each process that outlived its parent; GPUs from the machine's
    NVIDIA GPUs and the job's CUDA_VISIBLE_DEVICES. GPU-seconds are GPUs visible x wall time
    (no NVML sampling)."""

    cpu_seconds: float = 0.0  # user + system, whole process tree
    user_seconds: float = 0.0
    system_seconds: float = 0.0
    max_rss_bytes: int = 0  # peak resident memory of the largest process
    wall_seconds: float = 0.0
    gpus: int = 0  # GPUs visible to the job
    gpu_model: str | None = None  # e.g. "NVIDIA H100 80GB HBM3"
    gpu_seconds: float = 0.0


class Job(msgspec.Struct):
    """One recorded run of a command, whole."""

    id: str
    command: str  # display form, redacted
    argv: list[str]  # redacted
    cwd: str
    started: float
    status: JobStatus
    kind: JobKind = "run"
    project: str | None = None
    session: int | None = None
    step: int | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    request: str | None = None  # the training request it ran for (`run --request R-12`)
    inputs: list[IO] = []
    outputs: list[IO] = []
    context: RunContext = msgspec.field(default_factory=RunContext)
    version: int = MODEL_VERSION
    # Added after version 1 (None in older records: not measured)
    usage: Usage | None = None


class Artifact(msgspec.Struct):
    """Content, identified by its hash, and the names it was seen under."""

    hash: str
    size: int
    paths: list[str] = []
