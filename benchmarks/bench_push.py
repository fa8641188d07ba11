"""Time ``portside push`` against ``skopeo copy``, and the native builder against ``buildah bud``.

    .venv/bin/python benchmarks/bench_push.py [--quick] [--cold 5] [--warm 10] [--builds 10]

Everything runs on this machine against the real registry the tests use
(``docker-registry`` on loopback, plain HTTP, started through ``tests/harness``):

1. **Push.** A ~300 MB image is written once per run as an OCI layout in a temporary
   directory: three layers of 100 MiB of incompressible (pseudo-random) bytes, each a
   tar with one file, gzip'd (stored blocks: the data does not compress, and a gzip'd
   layer is what skopeo leaves alone; an uncompressed one it would recompress on the way),
   plus config and manifest. Then, interleaved:

   - ``portside push oci:DIR HOST/bench/big:1`` (the CLI, a subprocess) and
     ``skopeo copy --dest-tls-verify=false oci:DIR docker://HOST/bench/big2:1``,
   - *cold*: a fresh registry for every push (nothing to skip, nothing to mount; a fresh
     port also keeps skopeo's blob-info cache from offering a cross-repository mount),
   - *warm*: the same repository already holds every blob and the manifest; the push
     must upload nothing, which is checked in the registry's access log (no request to
     ``/blobs/uploads/``) and, for portside, in its JSON report.

2. **Build.** The same small pure-Python app (one package, no dependencies), from the
   project directory to an image in the registry, on the same busybox base image (pushed
   to the registry first):

   - ``portside build --project DIR`` with the native builder (``[tool.portside.image]``
     base and a fresh destination repository per run: the wheel is built with pip,
     base layers are cross-mounted, the app layer, config and manifest uploaded),
   - ``buildah bud --isolation chroot --storage-driver vfs`` of an equivalent
     Dockerfile (``FROM`` the base, ``COPY`` the package to ``/app``, the same ``ENV``
     and ``ENTRYPOINT``) followed by ``buildah push`` to a fresh repository; with its
     own storage root and ``CONTAINERS_CONF`` as the tests and the buildah builder use.
     Twice: with a fresh storage root per run (what portside's buildah builder does:
     the base is pulled each time) and with one storage root kept across runs (the base
     is pulled once, before timing).

The native build leaves its image untagged, by digest (tags are publish's job); buildah
push tags it: both end with the image in the registry. The ``pip wheel`` row times, on
its own, the wheel step the native build runs first. A timed command that fails is
reported as a failed row and the benchmark carries on. The CLI runs whatever
``import portside`` finds (``PYTHONPATH`` may name another checkout); the report says which.

Reports min, median and max in seconds and the ratios of medians, as a markdown table on
stdout and in ``benchmarks/results/`` (git-ignored). A benchmark, not a test: nothing
here asserts a time. ``--quick`` uses 20 MiB layers and fewer runs, to check the
benchmark itself in about a minute.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness: same registry setup as the tests

from harness.project import make_project, write_pyproject  # noqa: E402
from harness.registry import Registry  # noqa: E402
from portside.build._proc import CONTAINERS_CONF  # noqa: E402  (what buildah needs here)
from portside.registry.mediatypes import (  # noqa: E402
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

MiB = 1024 * 1024
# Rows whose command failed: name -> the error line (the benchmark goes on without them).
FAILURES: dict[str, str] = {}
EPOCH = 1_700_000_000
PACKAGES = {"busybox": "busybox-static"}
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


# -- images on disk -----------------------------------------------------------------------


class _HashingWriter:
    """A write-only file object that hashes what passes through and counts it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class _RandomReader:
    """``size`` reproducible incompressible bytes, read in pieces (never whole in memory)."""

    def __init__(self, seed: str, size: int) -> None:
        self.rng = random.Random(seed)
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return self.rng.randbytes(n)


@dataclass
class LayerBlob:
    digest: str  # of the gzip'd tar (what the registry stores)
    diff_id: str  # of the tar
    size: int


def _write_layer(blobs: Path, fill: Callable[[tarfile.TarFile], None], level: int = 0) -> LayerBlob:
    """A gzip'd tar blob written by ``fill``, streamed to disk and hashed both ways."""
    tmp = blobs / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    with tmp.open("wb") as handle:
        compressed = _HashingWriter(handle)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=level, mtime=0) as gz:
            plain = _HashingWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                fill(tar)
    tmp.replace(blobs / compressed.digest.split(":", 1)[1])
    return LayerBlob(compressed.digest, plain.digest, compressed.size)


def _add_blob(blobs: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return digest


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _finish_layout(
    root: Path, layers: Sequence[LayerBlob], config_extra: dict[str, Any]
) -> tuple[str, int]:
    """Config, manifest and ``index.json`` over ``layers``; returns (manifest digest, bytes)."""
    blobs = root / "blobs" / "sha256"
    created = dt.datetime.fromtimestamp(EPOCH, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": ARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "created": created,
        "config": config_extra,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": created, "created_by": "portside bench"} for _ in layers],
    }
    config_raw = _canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": _add_blob(blobs, config_raw),
            "size": len(config_raw),
        },
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": layer.size}
            for layer in layers
        ],
    }
    manifest_raw = _canonical(manifest)
    digest = _add_blob(blobs, manifest_raw)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest_raw),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    total = len(config_raw) + len(manifest_raw) + sum(layer.size for layer in layers)
    return digest, total


def make_big_image(root: Path, layers: int, layer_bytes: int) -> tuple[str, int]:
    """An OCI layout of ``layers`` gzip'd layers of ``layer_bytes`` random bytes each."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    written = []
    for number in range(layers):

        def fill(tar: tarfile.TarFile, number: int = number) -> None:
            info = tarfile.TarInfo(f"data/layer-{number}.bin")
            info.size, info.mtime, info.mode = layer_bytes, EPOCH, 0o644
            reader = _RandomReader(f"portside-bench-{number}-{layer_bytes}", layer_bytes)
            tar.addfile(info, reader)

        written.append(_write_layer(blobs, fill))
    return _finish_layout(root, written, {"Cmd": ["/bin/true"]})


def make_base_image(root: Path) -> tuple[str, int]:
    """A small base image: Debian's static busybox and a few applets in ``/bin``."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise SystemExit("needs the Debian package busybox-static")
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    content = Path(busybox).read_bytes()

    def fill(tar: tarfile.TarFile) -> None:
        folder = tarfile.TarInfo("bin")
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, EPOCH
        tar.addfile(folder)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(content), 0o755, EPOCH
        tar.addfile(info, io.BytesIO(content))
        for applet in ("cat", "echo", "ls", "sh"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "busybox", EPOCH
            tar.addfile(link)

    layer = _write_layer(blobs, fill, level=6)
    return _finish_layout(root, [layer], {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]})


def write_app_config(root: Path, base: str, destination: str) -> None:
    """The app's pyproject.toml: built natively from ``base``, pushed to ``destination``."""
    write_pyproject(
        root, "1.0.0", image={"builder": "native", "base": base, "destinations": [destination]}
    )


def dockerfile_for(base: str) -> str:
    """What the native builder makes, as a Dockerfile (the package where the wheel puts it)."""
    return (
        f"FROM {base}\n"
        "COPY hello/ /app/hello/\n"
        "ENV PYTHONPATH=/app\n"
        'ENTRYPOINT ["python", "-m", "hello"]\n'
    )


# -- running and timing -------------------------------------------------------------------


def portside_command() -> list[str]:
    script = Path(sys.executable).with_name("portside")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "portside"]


class CommandFailed(Exception):
    """A timed command failed: the row says so and the benchmark carries on."""

    def summary(self) -> str:
        """The line that says what went wrong (the CLI's ``error:`` line when there is one)."""
        lines = [line.strip() for line in str(self).splitlines() if line.strip()]
        said = [line for line in lines if line[0] not in '{}[]"' and "error" in line.lower()]
        return (said or lines or ["?"])[-1][:400].replace("|", "/")


def run(argv: Sequence[str], env: dict[str, str], *, timeout: float = 900) -> tuple[float, str]:
    """Run ``argv``; (wall seconds, stdout); ``CommandFailed`` with its output on failure."""
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, check=False, timeout=timeout
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise CommandFailed(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}"
            f"{done.stdout[-2000:]}"
        )
    return elapsed, done.stdout


def upload_requests(registry: Registry, since: int) -> int:
    """Requests to ``/blobs/uploads/`` in the registry's access log after byte ``since``."""
    with registry.log_file.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    count = sum(
        1
        for line in text.splitlines()
        if "/blobs/uploads/" in line and ('"POST ' in line or '"PATCH ' in line or '"PUT ' in line)
    )
    return count


def log_size(registry: Registry) -> int:
    try:
        return int(registry.log_file.stat().st_size)
    except OSError:
        return 0


def remove_tree(path: Path) -> None:
    """Remove a directory even when a vfs layer left read-only folders in it."""
    if not path.exists():
        return

    def writable(func: Callable[..., Any], name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            os.chmod(name, 0o700)
            func(name)

    shutil.rmtree(path, onerror=writable)


class Buildah:
    """buildah with its own storage root and CONTAINERS_CONF (as portside's builder runs it)."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        conf = work / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        self.env = {**env, "CONTAINERS_CONF": str(conf), "BUILDAH_ISOLATION": "chroot"}
        self.base = [
            "buildah",
            "--root",
            str(work / "root"),
            "--runroot",
            str(work / "run"),
            "--storage-driver",
            "vfs",
        ]

    def build_and_push(self, dockerfile: Path, context: Path, name: str, dest: str) -> float:
        bud = [
            *self.base, "bud", "--isolation", "chroot", "--tls-verify=false",
            "--timestamp", str(EPOCH), "-f", str(dockerfile), "-t", name, str(context),
        ]  # fmt: skip
        push = [*self.base, "push", "--tls-verify=false", name, f"docker://{dest}"]
        built, _ = run(bud, self.env)
        pushed, _ = run(push, self.env)
        return built + pushed

    def pull(self, ref: str) -> None:
        run([*self.base, "pull", "--tls-verify=false", ref], self.env)

    def remove(self) -> None:
        for argv in (["rm", "--all"], ["rmi", "--all", "--force"]):
            subprocess.run(
                [*self.base, *argv], env=self.env, capture_output=True, check=False, timeout=120
            )
        remove_tree(self.work)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# -- the benchmark ------------------------------------------------------------------------


@dataclass
class Settings:
    layers: int
    layer_bytes: int
    cold: int
    warm: int
    builds: int


def bench_push(
    work: Path, settings: Settings, portside: list[str], env: dict[str, str], notes: list[str]
) -> dict[str, list[float]]:
    image = work / "big"
    started = time.perf_counter()
    digest, total = make_big_image(image, settings.layers, settings.layer_bytes)
    notes.append(
        f"Image: {settings.layers} gzip'd layers of {settings.layer_bytes // MiB} MiB of "
        f"random bytes each, {total / 1e6:.1f} MB in all (written in "
        f"{time.perf_counter() - started:.1f} s); manifest `{digest[:19]}`."
    )
    skopeo_env = env
    timings: dict[str, list[float]] = {
        "portside push, cold": [],
        "skopeo copy, cold": [],
        "portside push, warm (registry has it)": [],
        "skopeo copy, warm (registry has it)": [],
    }

    def portside_push(host: str) -> tuple[float, dict[str, Any]]:
        elapsed, out = run(
            [*portside, "push", "--json", f"oci:{image}", f"{host}/bench/big:1"], env
        )
        return elapsed, json.loads(out)

    def skopeo_copy(host: str) -> float:
        argv = ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{image}",
                f"docker://{host}/bench/big2:1"]  # fmt: skip
        return run(argv, skopeo_env)[0]

    def check_digest(host: str, repo: str) -> None:
        argv = ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repo}:1"]
        raw = subprocess.run(argv, env=skopeo_env, capture_output=True, check=True).stdout
        got = "sha256:" + hashlib.sha256(raw).hexdigest()
        if got != digest:
            notes.append(f"ODD: {repo} holds manifest {got[:19]}, not the layout's {digest[:19]}")

    cold_names = {"portside": "portside push, cold", "skopeo": "skopeo copy, cold"}
    warm_names = {
        "portside": "portside push, warm (registry has it)",
        "skopeo": "skopeo copy, warm (registry has it)",
    }

    def push_once(tool: str, host: str, name: str, *, warm: bool) -> None:
        """One timed push; a failure is recorded against its row, not fatal."""
        try:
            if tool == "portside":
                elapsed, report = portside_push(host)
                dest = report["destinations"][0]
                expected = 0 if warm else settings.layers + 1
                if dest["blobs_uploaded"] != expected:
                    notes.append(
                        f"ODD: {name}: portside reports {dest['blobs_uploaded']} blobs "
                        f"uploaded, expected {expected}"
                    )
            else:
                elapsed = skopeo_copy(host)
        except CommandFailed as exc:
            FAILURES.setdefault(name, exc.summary())
            return
        timings[name].append(elapsed)

    # Cold: a fresh registry per push, so every blob is uploaded and nothing is mounted.
    for rep in range(settings.cold):
        order = ("portside", "skopeo") if rep % 2 == 0 else ("skopeo", "portside")
        for tool in order:
            registry = Registry(work / f"registry-cold-{rep}-{tool}")
            try:
                registry.start()
                push_once(tool, registry.host, cold_names[tool], warm=False)
                if rep == 0 and timings[cold_names[tool]]:
                    check_digest(registry.host, "bench/big" if tool == "portside" else "bench/big2")
            finally:
                registry.stop()
                remove_tree(registry.workdir)

    # Warm: one registry that already holds the image in both repositories.
    registry = Registry(work / "registry-warm")
    try:
        registry.start()
        portside_push(registry.host)
        skopeo_copy(registry.host)
        uploads = {"portside": 0, "skopeo": 0}
        for rep in range(settings.warm):
            order = ("portside", "skopeo") if rep % 2 == 0 else ("skopeo", "portside")
            for tool in order:
                mark = log_size(registry)
                push_once(tool, registry.host, warm_names[tool], warm=True)
                time.sleep(0.2)  # let the registry write its access log
                uploads[tool] += upload_requests(registry, mark)
        notes.append(
            "Warm pushes: upload requests (POST/PATCH/PUT on /blobs/uploads/) in the "
            f"registry's access log: portside {uploads['portside']}, skopeo "
            f"{uploads['skopeo']} (over {settings.warm} pushes each; 0: nothing uploaded)."
        )
    finally:
        registry.stop()
        remove_tree(registry.workdir)
    return timings


def bench_build(
    work: Path, settings: Settings, portside: list[str], env: dict[str, str], notes: list[str]
) -> dict[str, list[float]]:
    if shutil.which("buildah") is None:
        raise SystemExit("needs the Debian package buildah")
    base_layout = work / "base"
    make_base_image(base_layout)
    app = make_project(work / "app", "1.0.0")  # the test suite's app
    dockerfile = work / "Dockerfile"
    timings: dict[str, list[float]] = {
        "portside build (native)": [],
        "buildah bud + push, fresh storage": [],
        "buildah bud + push, kept storage": [],
        "(inside native) pip wheel --no-deps": [],
    }
    registry = Registry(work / "registry-build")
    kept: Buildah | None = None
    try:
        registry.start()
        host = registry.host
        base = f"{host}/bench/base:1"
        run([*portside, "push", f"oci:{base_layout}", base], env)
        dockerfile.write_text(dockerfile_for(base))
        build_env = {**env, "SOURCE_DATE_EPOCH": str(EPOCH)}
        kept = Buildah(Path(tempfile.mkdtemp(prefix="psb-kept-", dir="/tmp")), env)
        kept.pull(base)  # the base is in its storage before timing starts
        built: dict[str, str] = {}
        write_app_config(app, base, f"{host}/bench/app-native-0")

        def native(rep: int) -> float:
            write_app_config(app, base, f"{host}/bench/app-native-{rep}")
            elapsed, out = run([*portside, "build", "--project", str(app), "--json"], build_env)
            if rep == 1:
                built["ref"] = json.loads(out)["reference"]
            return elapsed

        def fresh(rep: int) -> float:
            buildah = Buildah(Path(tempfile.mkdtemp(prefix="psb-", dir="/tmp")), env)
            try:
                return buildah.build_and_push(
                    dockerfile, app, f"localhost/bench-app:{rep}", f"{host}/bench/app-bf-{rep}:1"
                )
            finally:
                buildah.remove()

        def reuse(rep: int) -> float:
            assert kept is not None
            return kept.build_and_push(
                dockerfile, app, f"localhost/bench-app:{rep}", f"{host}/bench/app-bk-{rep}:1"
            )

        def wheel(rep: int) -> float:
            out = work / f"wheel-{rep}"
            argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    "--no-build-isolation", str(app)]  # fmt: skip
            elapsed, _ = run(argv, {**build_env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
            shutil.rmtree(out, ignore_errors=True)
            return elapsed

        steps: list[tuple[str, Callable[[int], float]]] = [
            ("portside build (native)", native),
            ("buildah bud + push, fresh storage", fresh),
            ("buildah bud + push, kept storage", reuse),
            ("(inside native) pip wheel --no-deps", wheel),
        ]
        # One untimed round first (page cache, byte code), then interleaved timed rounds.
        for rep in range(-1, settings.builds):
            order = steps if rep % 2 == 0 else steps[::-1]
            for name, step in order:
                try:
                    elapsed = step(rep + 1)
                except CommandFailed as exc:
                    FAILURES.setdefault(name, exc.summary())
                    continue
                if rep >= 0:
                    timings[name].append(elapsed)
        # Both end with an image in the registry; compare the configs skopeo sees.
        seen = {}
        refs = {"native": built.get("ref"), "buildah": f"{host}/bench/app-bf-1:1"}
        for label, ref in refs.items():
            if ref is None or not timings["buildah bud + push, fresh storage"]:
                continue
            done = subprocess.run(
                ["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{ref}"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            config = json.loads(done.stdout)["config"]
            seen[label] = (config.get("Entrypoint"), config.get("Env"))
        if len(seen) < 2:
            pass
        elif seen["native"] != seen["buildah"]:
            notes.append(f"ODD: the images differ in entrypoint/env: {seen}")
        else:
            notes.append(f"Both images: Entrypoint {seen['native'][0]}, Env {seen['native'][1]}.")
    finally:
        if kept is not None:
            kept.remove()
        registry.stop()
        remove_tree(registry.workdir)
    return timings


def render(
    push: dict[str, list[float]],
    build: dict[str, list[float]],
    notes: list[str],
    settings: Settings,
    portside: list[str],
    quick: bool,
) -> str:
    def rows(timings: dict[str, list[float]]) -> list[str]:
        out = ["| command | runs | min s | median s | max s |", "|---|---:|---:|---:|---:|"]
        for name, values in timings.items():
            if name in FAILURES:
                out.append(f"| {name} | {len(values)} ok | FAILED: {FAILURES[name]} | | |")
            elif values:
                out.append(
                    f"| {name} | {len(values)} | {min(values):.2f} | "
                    f"{statistics.median(values):.2f} | {max(values):.2f} |"
                )
        return out

    def ratio(timings: dict[str, list[float]], a: str, b: str) -> str:
        if a in FAILURES or b in FAILURES or not timings.get(a) or not timings.get(b):
            return "n/a"
        return f"{statistics.median(timings[a]) / statistics.median(timings[b]):.2f}"

    lines = [
        f"# portside push vs skopeo copy, native build vs buildah "
        f"({dt.datetime.now():%Y-%m-%d %H:%M}{', --quick' if quick else ''})",
        "",
        f"Local plain-HTTP `docker-registry` on loopback; {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; portside run as "
        f"`{' '.join(Path(p).name if i == 0 else p for i, p in enumerate(portside))}`; "
        f"{_versions()}.",
        "",
    ]
    if push:
        lines += ["## Push", "", *rows(push), ""]
        mb = settings.layers * settings.layer_bytes / 1e6
        speeds = [
            f"{tool} {mb / statistics.median(push[name]):.0f} MB/s"
            for tool, name in (("portside", "portside push, cold"), ("skopeo", "skopeo copy, cold"))
            if push.get(name)
        ]
        lines += [f"Cold throughput (median): {', '.join(speeds)}.", ""]
    if build:
        lines += ["## Build (project directory to image in the registry)", "", *rows(build), ""]
    lines += ["| ratio of medians | value |", "|---|---:|"]
    if push:
        lines += [
            f"| portside push / skopeo copy, cold | "
            f"{ratio(push, 'portside push, cold', 'skopeo copy, cold')} |",
            f"| portside push / skopeo copy, warm | {ratio(push, *WARM)} |",
        ]
    if build:
        lines += [
            f"| native build / buildah bud + push (fresh storage) | "
            f"{ratio(build, 'portside build (native)', 'buildah bud + push, fresh storage')} |",
            f"| native build / buildah bud + push (kept storage) | "
            f"{ratio(build, 'portside build (native)', 'buildah bud + push, kept storage')} |",
        ]
    lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines) + "\n"


WARM = ("portside push, warm (registry has it)", "skopeo copy, warm (registry has it)")


def _versions() -> str:
    found = []
    for argv in (["skopeo", "--version"], ["buildah", "--version"]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
            found.append(" ".join(text.split()[:3]))
    return ", ".join(found)


def portside_location(env: dict[str, str]) -> str:
    """Where the CLI's ``portside`` package comes from (``PYTHONPATH`` may point elsewhere)."""
    done = subprocess.run(
        [sys.executable, "-c", "import portside; print(portside.__path__[0])"],
        env=env, cwd="/", capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "?"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 MiB layers, fewer runs")
    parser.add_argument("--layers", type=int, default=3, help="layers in the big image")
    parser.add_argument("--layer-mib", type=int, help="MiB per layer (100; 20 with --quick)")
    parser.add_argument("--cold", type=int, help="cold pushes per tool (5; 2 with --quick)")
    parser.add_argument("--warm", type=int, help="warm pushes per tool (10; 2 with --quick)")
    parser.add_argument("--builds", type=int, help="builds per builder (10; 2 with --quick)")
    parser.add_argument("--only", choices=("push", "build"), help="run one half only")
    args = parser.parse_args(argv)
    for tool in ("skopeo", "docker-registry", "buildah", "busybox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}: apt-get install {PACKAGES.get(tool, tool)}")
    settings = Settings(
        layers=args.layers,
        layer_bytes=(args.layer_mib or (20 if args.quick else 100)) * MiB,
        cold=args.cold or (2 if args.quick else 5),
        warm=args.warm or (2 if args.quick else 10),
        builds=args.builds or (2 if args.quick else 10),
    )

    work = Path(tempfile.mkdtemp(prefix="portside-bench-push-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTSIDE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Byte-code caching as in an installed package: compile the package the CLI will
    # import (PYTHONPATH may name another checkout) once, let Python use it.
    package = portside_location(env)
    compileall.compile_dir(package, quiet=1)
    env["PORTSIDE_CACHE_DIR"] = str(work / "portside-cache")
    # skopeo and buildah: no credentials from this machine, none needed.
    (work / "auth.json").write_text('{"auths": {}}')
    env["REGISTRY_AUTH_FILE"] = str(work / "auth.json")
    portside = portside_command()
    notes: list[str] = [f"portside imported from `{package}`."]
    try:
        push = bench_push(work, settings, portside, env, notes) if args.only != "build" else {}
        build = bench_build(work, settings, portside, env, notes) if args.only != "push" else {}
    except CommandFailed as exc:  # a set-up step, not a timed one
        raise SystemExit(str(exc)) from None
    finally:
        remove_tree(work)
    report = render(push, build, notes, settings, portside, args.quick)
    print(report)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (results / f"bench_push-{stamp}{'-quick' if args.quick else ''}.md").write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
