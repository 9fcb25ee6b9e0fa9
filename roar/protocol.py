"""The wire contract between roarctl and roard: every message, defined once, imported by both sides.

A frame is a 4-byte big-endian length followed by a msgpack body of that length. The length is
checked against MAX_FRAME before the body is read. Every message is a tagged Struct; a connection
starts with Hello/Welcome (version handshake), then carries requests and their replies in order.
Paths, argv, environment entries and targets (which may be paths) travel as bytes because Linux
paths need not be UTF-8; the views the CLI renders carry display strings (undecodable bytes shown
as backslash escapes: `frame` escapes any a display string still holds).

Protocol 2: targets are bytes (they were str in 1, so a file whose name is not UTF-8 could not
be named). roard answers a Hello of another version with a `version` error.
"""

from __future__ import annotations

import os
import struct
from typing import Annotated, Literal, get_args

import msgspec

from roar.errors import ErrorCode, Invalid
from roar.model import (
    CondaEnv,
    Container,
    FilteredSummary,
    GitState,
    Hardware,
    JobKind,
    JobStatus,
    Package,
    Process,
    SystemPackages,
    TrackerRun,
)
from roar.registry import Ancestry

PROTOCOL_VERSION = 2
MAX_FRAME = 16 * 1024 * 1024
HEADER = struct.Struct(">I")


class FrameError(Exception):
    """A frame that cannot be read: too large, truncated or not a known message."""


# Field constraints, checked when a message is decoded: a value outside them is answered with
# an `invalid` error naming the field, before any handler sees it.
Limit = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
Depth = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11)]  # seconds since the epoch; finite
# What the user named: a job id, @N, a hash or its prefix, or a path (no NUL: _check_paths).
Target = Annotated[bytes, msgspec.Meta(min_length=1, max_length=8192)]
StepRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
Name = Annotated[str, msgspec.Meta(max_length=4096, pattern=r"^[^\x00]*$")]
JobId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{12}$")]
Hash = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
WaitStatus = Annotated[int, msgspec.Meta(ge=-1, le=0xFFFF)]  # a raw wait status; -1: unknown
Size = Annotated[int, msgspec.Meta(ge=0)]
Pid = Annotated[int, msgspec.Meta(ge=0, le=2**31)]
Step = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


# ---------------------------------------------------------------- records carried by requests


class FileFact(msgspec.Struct, array_like=True, frozen=True):
    """What the tracer saw of one path during a run (the daemon classifies and hashes it)."""

    path: bytes  # absolute, as the tracee named it (not yet resolved)
    read: bool = False  # opened for reading
    written: bool = False  # opened for writing, truncated, or the target of a rename/link
    rdwr: bool = False  # opened O_RDWR without O_TRUNC: whether it was written depends on content
    deleted: bool = False  # unlinked or renamed away at some point
    pre_existed: bool | None = None  # existed before the first destructive access (None: no such)
    pre_hash: Hash | None = None  # content hash taken before it was overwritten (input content)
    pre_size: Size | None = None


class ExecImage(msgspec.Struct, array_like=True, frozen=True):
    path: bytes  # the filename given to execve
    exe: bytes  # what /proc/PID/exe pointed to afterwards
    argv: list[bytes]


class Proc(msgspec.Struct, array_like=True):
    pid: Pid
    ppid: Pid
    start: Timestamp
    end: Timestamp | None = None
    wait_status: WaitStatus | None = None
    execs: list[ExecImage] = []


# ---------------------------------------------------------------- requests (roarctl -> roard)


class Hello(msgspec.Struct, tag=True):
    protocol: int
    client: str


class Ping(msgspec.Struct, tag=True):
    pass


class Shutdown(msgspec.Struct, tag=True):
    pass


class Init(msgspec.Struct, tag=True):
    cwd: bytes


class GetStatus(msgspec.Struct, tag=True):
    cwd: bytes
    limit: Limit = 5


class GetLog(msgspec.Struct, tag=True):
    cwd: bytes
    limit: Limit = 20
    all_projects: bool = False


class Show(msgspec.Struct, tag=True):
    target: Target
    cwd: bytes
    verbose: bool = False


class RunStart(msgspec.Struct, tag=True):
    argv: Annotated[list[bytes], msgspec.Meta(min_length=1)]
    cwd: bytes
    env: list[bytes]  # KEY=VALUE, as the command receives it; redacted by roard before storing
    started: Timestamp
    kind: JobKind = "run"
    step: Step | None = None  # re-running a recorded step (`run @N`): its number
    # The command started before this was sent (roard.prerun): nothing can be injected or
    # refused (roarctl holds the command's writes until roard has answered).
    early: bool = False


class Reset(msgspec.Struct, tag=True):
    """Start a new session in the project of cwd."""

    cwd: bytes


class Pop(msgspec.Struct, tag=True):
    """Remove the session's most recent job record (files only with delete_outputs)."""

    cwd: bytes
    delete_outputs: bool = False
    dry_run: bool = True  # True: say what would be removed, remove nothing
    job_id: JobId | None = None  # the job the user confirmed: refused if no longer the newest


class GetStep(msgspec.Struct, tag=True):
    """A recorded step's command, to run it again (`roarctl run @N --x=y`)."""

    cwd: bytes
    ref: StepRef


class GetDag(msgspec.Struct, tag=True):
    cwd: bytes


class GetLineage(msgspec.Struct, tag=True):
    target: Target
    cwd: bytes
    downstream: bool = False
    depth: Depth = 0  # 0: unlimited


class GetInputs(msgspec.Struct, tag=True):
    target: Target
    cwd: bytes
    unsourced: bool = False


class Diff(msgspec.Struct, tag=True):
    a: Target
    b: Target
    cwd: bytes


class EnvOp(msgspec.Struct, tag=True):
    cwd: bytes
    op: Literal["set", "get", "list", "unset"]
    name: Name = ""
    value: Name = ""


class LabelOp(msgspec.Struct, tag=True):
    cwd: bytes
    op: Literal["set", "get", "rm"]
    target: Target
    pairs: dict[Name, Name] = {}  # set: key -> value; rm/get: keys (values ignored)


class CollectionOp(msgspec.Struct, tag=True):
    cwd: bytes
    op: Literal["add", "show", "list"]
    name: Name = ""
    targets: list[Target] = []


class RunFiles(msgspec.Struct, tag=True):
    """A chunk of file facts for a run; sent before RunFinish so no frame grows unbounded."""

    job_id: JobId
    files: list[FileFact]


class RunFinish(msgspec.Struct, tag=True):
    job_id: JobId
    start: RunStart  # repeated so that a daemon which lost the run (crash, restart) can rebuild it
    ended: Timestamp
    wait_status: WaitStatus  # raw wait status of the root process
    procs: list[Proc] = []
    blind_spots: list[str] = []
    files: list[FileFact] = []  # any facts not already sent with RunFiles
    tracer_ok: bool = True  # False when the tracer failed and the record is partial
    external: list[str] = []  # network peers connected to, e.g. "93.184.216.34:443 (tcp)"


Visibility = Literal["private", "team", "public"]  # roar.registry.Visibility (not imported:
# `roarctl run` loads this module before its command starts)


class Register(msgspec.Struct, tag=True):
    """Send jobs to the registry (roard.registration), answered with Progress, then Registered:
    the whole upstream of each target, the current session's jobs, or every job."""

    cwd: bytes
    targets: list[Target] = []
    session: bool = False
    all: bool = False
    visibility: Visibility | None = None  # None: registry.visibility, else the registry's
    agent: Name | None = None  # the client's SSH_AUTH_SOCK, for a roard that has none


class RemoteLineage(msgspec.Struct):
    """A target's lineage as the team registry answered it (`GET artifacts/{ref}/ancestry`,
    fetched by roarctl): roard plans from these records as it does from its own store."""

    url: str  # the registry's base URL
    ancestry: Ancestry


class GetPlan(msgspec.Struct, tag=True):
    """The plan to reproduce TARGET (`roarctl reproduce`): roard computes it, roarctl runs it."""

    target: Target  # artifact hash, prefix or path, job id, step, `session` or `session:N`
    cwd: bytes
    into: bytes | None = None  # the reproduction directory (None: cwd/reproduce-<hash12>)
    inputs: list[bytes] = []  # directories to search for root inputs, by content hash
    env: list[Name] = []  # names set in the caller's environment (for redacted variables)
    # Added in protocol 1 with a default, so a GetPlan without it still decodes (as all fields
    # added after 1.0 are): the lineage from the registry (None: from the local store).
    remote: RemoteLineage | None = None


class HashFiles(msgspec.Struct, tag=True):
    """Content hashes of files, through roard's hash cache (which they feed)."""

    paths: Annotated[list[bytes], msgspec.Meta(max_length=100_000)]


Request = (
    Hello
    | Ping
    | Shutdown
    | Init
    | GetStatus
    | GetLog
    | Show
    | RunStart
    | RunFiles
    | RunFinish
    | Reset
    | Pop
    | GetStep
    | GetDag
    | GetLineage
    | GetInputs
    | Diff
    | EnvOp
    | LabelOp
    | CollectionOp
    | Register
    | GetPlan
    | HashFiles
)


# ---------------------------------------------------------------- views (what the CLI renders)


class JobRow(msgspec.Struct):
    id: str
    command: str  # display form, secrets redacted
    project: str | None
    status: JobStatus
    started: float
    ended: float | None
    exit_code: int | None
    signal: int | None
    inputs: int
    outputs: int
    step: str | None = None  # @N or @BN within its session
    session: int | None = None
    kind: JobKind = "run"
    superseded: bool = False  # a later job re-ran the same step
    stale: bool = False  # an upstream step re-ran with different outputs


class IORecord(msgspec.Struct):
    path: str
    hash: str
    size: int
    producer: str | None = None  # for an input: the job it came from (roard.sources), if any
    previous: str | None = None  # for an output that replaced a file: the replaced content's hash


class JobDetail(msgspec.Struct):
    job: JobRow
    cwd: str
    argv: list[str]
    inputs: list[IORecord] = []
    outputs: list[IORecord] = []
    git: GitState | None = None
    env: dict[str, str] = {}
    packages: dict[str, list[Package]] = {}  # interpreter path -> packages
    hardware: Hardware | None = None
    processes: list[Process] = []
    blind_spots: list[str] = []
    filtered: FilteredSummary = msgspec.field(default_factory=FilteredSummary)
    trackers: list[TrackerRun] = []
    external: list[str] = []  # network peers (external sources): "ip:port (tcp)", "(tcp, local)"
    system: SystemPackages | None = None  # the packages of the programs and libraries it used
    conda: CondaEnv | None = None
    container: Container | None = None


class JobRef(msgspec.Struct):
    id: str
    command: str
    started: float
    path: str


class ArtifactDetail(msgspec.Struct):
    hash: str
    size: int
    paths: list[str]
    produced_by: list[JobRef]  # the producer: the earliest job that wrote it without reading it
    read_by: list[JobRef]
    copies: list[JobRef] = []  # the other jobs that wrote it: copies, re-runs with the same bytes


class OutboxInfo(msgspec.Struct):
    """Registration, as `status` shows it."""

    url: str  # "" when registry.url is not set
    auto: bool
    queued: int
    held: int = 0  # refused by the registry (see last_error): sent again by `roarctl register`
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    retry_at: float | None = None  # the next attempt, while the registry is failing


class DaemonInfo(msgspec.Struct):
    pid: int
    version: str
    started: float
    socket: str
    store: str
    store_bytes: int
    jobs: int
    artifacts: int
    runs: int = 0  # runs in progress: started or streaming facts, not finished


class PlanIO(msgspec.Struct):
    """A file of a planned job: where the reproduction finds (input) or makes (output) it."""

    path: str  # relative to the plan's base (the repository) when inside it, else absolute
    hash: str
    size: int
    raw: bytes  # the path as recorded (absolute)
    inside: bool = True  # under the base: it goes in the reproduction directory
    producer: str | None = None  # the planned job that makes it (an input's None: a root input)
    previous: str | None = None  # an output that replaced a file: the replaced content's hash


class PlanInterpreter(msgspec.Struct):
    """A Python interpreter a job ran, and the environment the reproduction makes for it."""

    path: str  # as recorded
    requirements: list[str]  # exactly what to install: "name==version" or "name @ url"
    provided: list[str] = []  # packages a build step of the plan installs (from a directory)
    build: bool = False  # a build step runs with it (installs into it)


class PlanJob(msgspec.Struct):
    id: str
    kind: JobKind
    command: str  # display form
    argv: list[str]
    cwd: str  # relative to the plan's base ("." for the base itself)
    started: float
    ref: str | None = None  # @N or @BN in its session
    session: int | None = None
    commit: str | None = None
    exit_code: int | None = None
    env: int = 0  # its environment as recorded: an index of the plan's `envs`
    secrets: list[str] = []  # variables whose values were redacted: the user supplies them
    interpreters: list[int] = []  # the Python interpreters it ran: indexes of `interpreters`
    inputs: list[PlanIO] = []
    outputs: list[PlanIO] = []
    differs: list[str] = []  # what this machine has that the job did not: system packages,
    # conda environment, container, machine


RootSource = Literal["commit", "present", "in-place", "copy", "missing"]


class RootInput(msgspec.Struct):
    """A file the plan needs that no planned job makes, and where it will come from."""

    path: str  # where it is needed: relative to the base, or absolute outside it
    hash: str
    size: int
    source: RootSource  # commit: checked out; present: already in the reproduction directory;
    # in-place: outside the repository, where it was; copy: from `origin`; missing: nowhere
    raw: bytes = b""  # where it is needed, as recorded
    origin: str | None = None  # the file with that content it is copied from
    origin_raw: bytes | None = None
    names: list[str] = []  # every path this content was seen at
    readers: list[str] = []  # the planned jobs that read it
    made_by: str | None = None  # a job outside the plan's base that wrote it


class PlanReply(msgspec.Struct, tag=True):
    target: str  # what TARGET named: an artifact hash, a job id, or "session N"
    kind: Literal["artifact", "job", "session"]
    label: str  # the artifact's path, the job's command, the session's project
    into: str  # the reproduction directory
    into_raw: bytes
    base: str | None = None  # the repository (or directory) the planned jobs ran in
    base_raw: bytes | None = None
    checkout: Literal["local", "remote", "none"] = "none"  # where the source comes from
    repository: str | None = None  # the local repository, or the remote's URL, to clone
    project: str | None = None  # the original project (its `roarctl env` values)
    project_raw: bytes | None = None
    jobs: list[PlanJob] = []  # in the order they run: build steps first
    # what many jobs share, once: recorded environments (secrets are "<redacted>"), and the
    # interpreters with the package sets to install for them
    envs: list[dict[str, str]] = []
    interpreters: list[PlanInterpreter] = []
    roots: list[RootInput] = []
    wanted: list[PlanIO] = []  # the outputs that are the target (`producer`: the job that makes
    # each): their hashes decide the verdict
    problems: list[str] = []  # what stops the reproduction: nothing runs while there is one
    notes: list[str] = []
    from_project: list[str] = []  # redacted variables the project's `roarctl env` supplies
    machine: list[str] = []  # differences of this machine, shared by every job
    registry: str | None = None  # the lineage came from this registry (None: the local store)


# ---------------------------------------------------------------- replies (roard -> roarctl)


class Welcome(msgspec.Struct, tag=True):
    protocol: int
    server: str
    pid: int


class Ok(msgspec.Struct, tag=True):
    message: str = ""


class Error(msgspec.Struct, tag=True):
    code: ErrorCode
    message: str
    hint: str | None = None


class InitDone(msgspec.Struct, tag=True):
    root: str
    config: str
    created: bool


class RunStarted(msgspec.Struct, tag=True):
    job_id: str
    project: str | None
    warnings: list[str] = []
    step: str | None = None
    inject: list[bytes] = []  # KEY=VALUE from `roarctl env set`, added to the command's env
    refuse: str | None = None  # a hygiene rule refuses this run: the reason


class SessionInfo(msgspec.Struct, tag=True):
    session: int
    project: str | None
    message: str = ""


class PopReply(msgspec.Struct, tag=True):
    job: JobRow
    removed: bool
    deleted: list[str] = []  # output files deleted (or that would be)
    kept: list[str] = []  # outputs kept because another job read them


class StepReply(msgspec.Struct, tag=True):
    ref: str
    job_id: str
    argv: list[str]
    cwd: str
    kind: JobKind
    cwd_raw: bytes = b""  # the directory itself (cwd is its display form)


class DagStep(msgspec.Struct):
    ref: str
    job: JobRow
    depends_on: list[str]
    inputs: list[IORecord]
    outputs: list[IORecord]
    superseded: list[str] = []  # earlier job ids of this step
    stale_reason: str | None = None


class DagReply(msgspec.Struct, tag=True):
    session: int | None
    project: str | None
    steps: list[DagStep]


class LineageNode(msgspec.Struct):
    kind: Literal["artifact", "job"]
    id: str  # hash or job id
    label: str  # path or command
    children: list[LineageNode] = []
    truncated: bool = False  # depth limit reached or already shown above


class LineageReply(msgspec.Struct, tag=True):
    root: LineageNode
    downstream: bool


class InputsReply(msgspec.Struct, tag=True):
    inputs: list[IORecord]


class DiffEntry(msgspec.Struct):
    field: str  # code | command | inputs | packages | env | hardware | ...
    a: str | None
    b: str | None
    note: str = ""


class DiffReply(msgspec.Struct, tag=True):
    a: str
    b: str
    same: bool
    entries: list[DiffEntry]


class EnvReply(msgspec.Struct, tag=True):
    project: str
    values: dict[str, str]  # redacted unless asked for one value with `get`


class LabelReply(msgspec.Struct, tag=True):
    target: str
    labels: dict[str, str]


class CollectionReply(msgspec.Struct, tag=True):
    collections: dict[str, list[IORecord]]


class Hashes(msgspec.Struct, tag=True):
    found: list[tuple[bytes, str, int]]  # (path, hash, size) of each regular file hashed


class Progress(msgspec.Struct, tag=True):
    label: str
    done: int
    total: int


class RunDone(msgspec.Struct, tag=True):
    job: JobRow
    filtered: int
    warnings: list[str] = []


class StatusReply(msgspec.Struct, tag=True):
    daemon: DaemonInfo
    project: str | None
    git: GitState | None
    recent: list[JobRow]
    session: int | None = None
    steps: int = 0
    stale: list[str] = []  # "@2: @1 re-ran and changed ..."
    modified: list[str] = []  # "<path>: modified outside roar" / "<path>: missing"
    registry: OutboxInfo | None = None


class LogReply(msgspec.Struct, tag=True):
    jobs: list[JobRow]


class ShowJob(msgspec.Struct, tag=True):
    detail: JobDetail


class ShowArtifact(msgspec.Struct, tag=True):
    detail: ArtifactDetail


class RegisteredTarget(msgspec.Struct):
    target: str  # as the user named it
    kind: Literal["artifact", "job", "session"]
    id: str  # artifact hash, or the registry's id of the job or session
    url: str


class Registered(msgspec.Struct, tag=True):
    url: str  # the registry
    jobs: int  # jobs of the targets' lineage
    sent: int  # sent now (the rest were registered before)
    new: int  # of those, new to the registry (the others it knew)
    targets: list[RegisteredTarget] = []
    skipped: list[str] = []  # targets nothing could be registered for: why


Reply = (
    Welcome
    | Ok
    | Error
    | InitDone
    | RunStarted
    | Progress
    | RunDone
    | StatusReply
    | LogReply
    | ShowJob
    | ShowArtifact
    | Registered
    | SessionInfo
    | PopReply
    | StepReply
    | DagReply
    | LineageReply
    | InputsReply
    | DiffReply
    | EnvReply
    | LabelReply
    | CollectionReply
    | PlanReply
    | Hashes
)

_encoder = msgspec.msgpack.Encoder()
request_decoder = msgspec.msgpack.Decoder(Request)
reply_decoder = msgspec.msgpack.Decoder(Reply)


def frame(message: msgspec.Struct) -> bytes:
    """Encode one message as a length-prefixed frame."""
    try:
        body = _encoder.encode(message)
    except UnicodeEncodeError:  # a display string holding a path's undecodable bytes
        body = _encoder.encode(_escaped(msgspec.to_builtins(message, builtin_types=(bytes,))))
    if len(body) > MAX_FRAME:
        raise FrameError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return HEADER.pack(len(body)) + body


def _escaped(value: object) -> object:
    """`value` (builtins) with every str's surrogate-escaped bytes as backslash escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


def target_text(target: bytes) -> str:
    """A target as roard's look-ups take it: a path's undecodable bytes surrogate-escaped, so
    that os.fsencode gives them back (and `frame` shows them escaped)."""
    return os.fsdecode(target)


def body_length(header: bytes) -> int:
    """Validate a frame header and return the body length it announces."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    return int(length)


_REQUEST_TAGS = frozenset(t.__name__ for t in get_args(Request))


def decode_request(body: bytes) -> Request:
    """The request in a frame's body. FrameError: it is no request at all; roar.errors.Invalid:
    a known request with a value of the wrong type or out of range (the message names it)."""
    try:
        request = request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        tag = _tag(body)
        if tag in _REQUEST_TAGS:
            raise Invalid(f"invalid {tag} request: {exc}") from None
        raise FrameError(f"malformed request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed request: {exc}") from None
    _check_paths(request)
    return request


def _check_paths(request: Request) -> None:
    """What msgspec constraints cannot say of bytes: directories and file paths are absolute and
    hold no NUL byte (a NUL would end the path early in every system call)."""
    cwd = getattr(request, "cwd", None)
    if isinstance(request, RunFinish):
        cwd = request.start.cwd
    if cwd is not None and (not cwd.startswith(b"/") or b"\0" in cwd):
        raise Invalid(
            f"invalid {type(request).__name__} request: cwd must be an absolute path - at `$.cwd`"
        )
    files = request.files if isinstance(request, (RunFiles, RunFinish)) else ()
    for i, fact in enumerate(files):
        if not fact.path.startswith(b"/") or b"\0" in fact.path:
            raise Invalid(
                f"invalid {type(request).__name__} request: a file path must be absolute"
                f" - at `$.files[{i}].path`"
            )
    for where, target in _targets(request):
        if b"\0" in target:
            raise Invalid(
                f"invalid {type(request).__name__} request: a target holds no NUL byte"
                f" - at `$.{where}`"
            )
    paths: list[tuple[str, bytes]] = []
    if isinstance(request, HashFiles):
        paths = [(f"paths[{i}]", p) for i, p in enumerate(request.paths)]
    elif isinstance(request, GetPlan):
        paths = [(f"inputs[{i}]", p) for i, p in enumerate(request.inputs)]
        if request.into is not None:
            paths.append(("into", request.into))
    for where, path in paths:
        if not path.startswith(b"/") or b"\0" in path:
            raise Invalid(
                f"invalid {type(request).__name__} request: a path must be absolute"
                f" - at `$.{where}`"
            )


def _targets(request: Request) -> list[tuple[str, bytes]]:
    match request:
        case Show() | GetLineage() | GetInputs() | LabelOp() | GetPlan():
            return [("target", request.target)]
        case Diff():
            return [("a", request.a), ("b", request.b)]
        case CollectionOp() | Register():
            return [(f"targets[{i}]", t) for i, t in enumerate(request.targets)]
    return []


def _tag(body: bytes) -> object:
    """The message type a body names, when it is a msgpack map (only read after an error)."""
    try:
        raw = msgspec.msgpack.decode(body)
    except msgspec.DecodeError:
        return None
    return raw.get("type") if isinstance(raw, dict) else None


def decode_reply(body: bytes) -> Reply:
    try:
        return reply_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise FrameError(f"malformed reply: {exc}") from None


def show_path(path: bytes) -> str:
    """Display form of a path: UTF-8 where it is, backslash escapes where it is not."""
    return path.decode("utf-8", "backslashreplace")
