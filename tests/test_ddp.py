"""Distributed benchmarks: the case matrix, the torchrun launcher and its faults, and the suite end to end.

The launches are real: torchrun starts two gloo ranks on the CPU with a tiny model (a few seconds each).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainperf import child_process, results
from trainperf.distributed import launch as distributed
from trainperf.distributed.launch import DistributedError, LaunchConfig
from trainperf.gate.baseline import parse
from trainperf.measurement.cases import Case, DistributedCase, distributed_matrix, is_benchmark_param_id
from trainperf.measurement.checks import MeasurementError

TINY = Case("cpu", "eager", "fp32", "contiguous", "ddp_models:tiny", 8, "foreach")
CONFIG = LaunchConfig(
    warmup_steps=2,
    rounds=3,
    window_s=0.1,
    steps=3,
    seed=0,
    tf32=True,
    cudnn_benchmark=True,
    data_dir=None,
    synthetic_images=256,
    sample_period_s=0.1,
    timeout_s=120,
)
DDP_OPTIONS = (
    "--trainperf-model=ddp_models:tiny",
    "--trainperf-batch-size=8",
    "--trainperf-synthetic-images=256",
    "--trainperf-warmup-steps=2",
    "--trainperf-rounds=3",
    "--trainperf-steps=3",
    "-p",
    "no:cacheprovider",
)


def _with(model: str) -> Case:
    return Case("cpu", "eager", "fp32", "contiguous", model, 8, "foreach")


def _workers_alive() -> list[str]:
    """Processes of any launch: torchrun and its ranks (their command lines name trainperf.distributed.worker)."""
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        if b"trainperf.distributed.worker" in text:
            alive.append(cmdline.parent.name)
    return alive


# ---- cases -------------------------------------------------------------------------------------------------


def test_ids_carry_world_size_and_nodes_and_are_baseline_ids():
    case = Case("cuda", "eager", "bf16", "channels_last", "resnet18_cifar", 128, "fused")
    assert DistributedCase(case, 4).id == "cuda-eager-bf16-channels_last-resnet18_cifar-b128-fused-ws4"
    two_nodes = DistributedCase(case, 16, nnodes=2)
    assert two_nodes.id.endswith("-fused-ws16-nodes2") and two_nodes.nproc_per_node == 8
    assert is_benchmark_param_id(two_nodes.id)
    assert not is_benchmark_param_id(case.id + "-ws0")
    entry = {"img_per_s": 100.0, "samples": [99.0, 101.0]}
    doc = {
        "schema": "trainperf-baseline",
        "schema_version": 1,
        "machine_key": "k",
        "benchmarks": {f"test_ddp_train_step[{two_nodes.id}]": entry},
    }
    assert parse(doc, Path("b.json")).entries  # the committed baseline format accepts distributed ids


def test_auto_world_sizes_follow_the_gpus_and_nodes():
    cuda = [d for d in distributed_matrix({}, None, gpus_per_node=4) if d.case.device == "cuda"]
    assert sorted({d.world_size for d in cuda}) == [1, 2, 3, 4]
    cpu = [d for d in distributed_matrix({}, None, gpus_per_node=4) if d.case.device == "cpu"]
    assert [d.world_size for d in cpu] == [1, 2]
    # no GPU: one CUDA world size each, which the suite skips with the reason
    assert {d.world_size for d in distributed_matrix({}, None, gpus_per_node=0) if d.case.device == "cuda"} == {1}
    two = distributed_matrix({"device": ("cuda",)}, None, gpus_per_node=2, nnodes=2)
    assert {(d.world_size, d.nproc_per_node) for d in two} == {(2, 1), (4, 2)}
    chosen = distributed_matrix({"device": ("cpu",), "batch_size": (8,)}, (2, 1, 2), gpus_per_node=0)
    assert {d.case.device for d in chosen} == {"cpu"} and {d.case.batch_size for d in chosen} == {8}
    assert [d.world_size for d in chosen[:2]] == [1, 2]  # ascending and deduplicated, per case
    assert len(chosen) == 2 * len({d.case for d in chosen})


def test_unsupported_and_capacity_reasons():
    mps = DistributedCase(Case("mps", "eager", "fp32", "contiguous", "resnet18", 8, "foreach"), 2)
    assert "CPU (gloo) and CUDA (NCCL)" in (mps.unsupported_reason() or "")
    assert "not a multiple of 2 nodes" in (DistributedCase(TINY, 3, nnodes=2).unsupported_reason() or "")
    cuda = DistributedCase(Case("cuda", "eager", "fp32", "contiguous", "resnet18", 8, "foreach"), 4)
    assert distributed.capacity_reason(cuda, gpus_per_node=2, cpus=64) == (
        "world size 4 needs 4 GPUs per node; this node has 2 visible"
    )
    assert distributed.capacity_reason(cuda, gpus_per_node=4, cpus=1) is None
    assert "needs 3 CPU cores" in (distributed.capacity_reason(DistributedCase(TINY, 3), gpus_per_node=0, cpus=2) or "")
    assert distributed.threads_per_rank(2, 8) == 4
    assert distributed.threads_per_rank(4, 2) == 1


def _ddp(group: str | None, world_size: int, img_per_s: float) -> results.DdpStep:
    rates = results.Rates(img_per_s=img_per_s, img_per_s_rounds=(img_per_s,))
    placement = results.Distributed(world_size=world_size, distributed_group=group)
    return results.DdpStep(
        identity=results.Identity(case_id=f"x-ws{world_size}"), throughput=rates, distributed=placement
    )


def test_scaling_efficiency_is_relative_to_the_smallest_world_size():
    assert results.scaling_efficiency({1: 100.0, 2: 180.0, 4: 300.0}) == {1: 1.0, 2: 0.9, 4: 0.75}
    # multi-node runs have no world size 1: the reference is the smallest one measured
    assert results.scaling_efficiency({2: 200.0, 4: 360.0}) == {2: 1.0, 4: 0.9}
    # computed over the run, whatever order the world sizes ran in
    loader = results.Loader(
        identity=results.Identity(case_id="l"), throughput=results.Rates(img_per_s=1.0, img_per_s_rounds=(1.0,))
    )
    scaled = results.with_scaling(
        [_ddp("a", 2, 150.0), _ddp("a", 1, 100.0), _ddp("b", 2, 50.0), _ddp(None, 4, 9.0), loader]
    )
    assert [getattr(r, "distributed", None) and r.distributed.scaling_efficiency for r in scaled] == [
        0.75,
        1.0,
        1.0,
        None,
        None,
    ]
    assert scaled[0].distributed.efficiency_reference_world_size == 1 and scaled[4] is loader


def test_torchrun_command_standalone_or_rendezvous():
    one = distributed.torchrun_command(DistributedCase(TINY, 2), CONFIG, "{}")
    assert one[1:4] == ["-m", "torch.distributed.run", "--max-restarts"] and "--standalone" in one
    assert one[-5:] == ["--nproc-per-node", "2", "-m", "trainperf.distributed.worker", "{}"]
    config = LaunchConfig(**{**CONFIG.__dict__, "rdzv_endpoint": "node0:29500", "rdzv_id": "job7"})
    multi = distributed.torchrun_command(DistributedCase(TINY, 4, nnodes=2), config, "{}")
    assert "--standalone" not in multi
    text = " ".join(multi)
    assert "--nnodes 2 --rdzv-backend c10d --rdzv-endpoint node0:29500" in text
    assert f"--rdzv-id job7-{DistributedCase(TINY, 4, nnodes=2).id}" in text and "--nproc-per-node 2" in text


def test_endpoint_in_use_only_for_a_listener_on_this_node():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert distributed.endpoint_in_use(f"127.0.0.1:{port}")
    assert not distributed.endpoint_in_use(f"127.0.0.1:{port}")
    assert not distributed.endpoint_in_use("192.0.2.1:29500")  # TEST-NET: not this node, cannot be checked


# ---- launches ----------------------------------------------------------------------------------------------


def test_two_gloo_ranks_return_global_throughput():
    launched = distributed.launch(DistributedCase(TINY, 2), CONFIG)
    result = launched.result
    assert result is not None
    assert (result["world_size"], result["nproc_per_node"], result["backend"]) == (2, 2, "gloo")
    assert result["global_batch_size"] == 16 and result["steps_per_round"] == 3
    # global img/s counts both ranks' images over the slowest rank's window
    windows = result["window_s_rounds"]
    assert len(windows) == 3
    assert result["img_per_s_rounds"] == pytest.approx([16 * 3 / w for w in windows], rel=1e-3)
    assert result["img_per_s_per_device"] == pytest.approx(result["img_per_s"] / 2, rel=1e-3)
    assert result["loss_last"] < result["loss_first"]
    assert result["threads_per_rank"] == distributed.threads_per_rank(2, distributed.usable_cpus())
    # FLOPs of the model inside DDP, per image: forward 2(W1 + W2) multiply-adds, backward the weight gradients
    # 2(W1 + W2) plus the input gradient of the second layer only (the images need none), 2 W2
    w1, w2 = 3072 * 16, 16 * 10
    assert result["train_flops_per_image"] == 4 * (w1 + w2) + 2 * w2
    assert result["mfu"] is None  # no GPU peak on a CPU
    assert not _workers_alive()


def test_compiled_ddp_compiles_a_graph_and_only_in_warm_up():
    compiled = Case("cpu", "default", "fp32", "contiguous", "ddp_models:wide", 8, "foreach")
    result = distributed.launch(DistributedCase(compiled, 2), CONFIG).result
    assert result is not None
    # the worker fails the case on a recompile in the rounds, a loss that does not go down, or no graph at all
    # (torch.compile(DDP(model)) compiled none on torch 2.14; DDP(compiled) does). DDPOptimizer splits the
    # 42 MB model's graph at DDP's 25 MB buckets inside that one Dynamo graph; compilation is in the warm-up only.
    assert result["graphs"] >= 1
    assert result["recompiles_in_rounds"] == 0 and result["loss_last"] < result["loss_first"]
    assert result["first_step_s"] > 5 * result["step_ms"] / 1e3


def test_a_window_lasts_as_long_as_the_slowest_rank():
    from ddp_models import SLOW_STEP_S

    result = distributed.launch(DistributedCase(_with("ddp_models:slow_on_rank1"), 2), CONFIG).result
    assert result is not None
    assert min(result["window_s_rounds"]) >= result["steps_per_round"] * SLOW_STEP_S
    assert result["img_per_s"] <= 16 / SLOW_STEP_S


def test_a_rank_failing_its_checks_alone_fails_the_others_at_once():
    with pytest.raises(DistributedError) as info:
        distributed.launch(DistributedCase(_with("ddp_models:stuck_on_rank1"), 2), CONFIG)
    message = str(info.value)
    assert "timed out" not in message
    assert "rank1 failed first" in message and "loss did not go down" in message
    error = f"{MeasurementError.__module__}.{MeasurementError.__qualname__}"
    assert f"rank0 also failed: {error}: {distributed.PEER_FAILED}" in message


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="finding the ranks of a launch needs /proc")
def test_killing_pytest_takes_the_launch_down(tmp_path):
    script = f"""
import sys
sys.path[:0] = {[str(Path(__file__).parent)]!r}
from trainperf.distributed import launch as distributed
from trainperf.measurement.cases import Case, DistributedCase
config = distributed.LaunchConfig(**{{**{CONFIG.__dict__!r}, "timeout_s": 600}})
distributed.launch(DistributedCase(Case("cpu", "eager", "fp32", "contiguous", "ddp_models:hang_on_rank1", 8,
                                        "foreach"), 2), config)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(_workers_alive()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_workers_alive()) == 3  # torchrun (its command line names the worker module) and two ranks
    finally:
        parent.kill()  # SIGKILL: no handler of the parent can run
        parent.wait()
    deadline = time.monotonic() + 40
    while _workers_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _workers_alive()


def test_a_crashing_rank_fails_with_its_error_and_leaves_nothing_running():
    with pytest.raises(DistributedError) as info:
        distributed.launch(DistributedCase(_with("ddp_models:crash_on_rank1"), 2), CONFIG)
    message = str(info.value)
    assert "torchrun exited with 1" in message
    assert "rank1 failed first" in message and "RuntimeError: rank 1 crashed on purpose" in message
    assert not _workers_alive()


def test_a_hung_rank_is_killed_at_the_deadline():
    config = LaunchConfig(**{**CONFIG.__dict__, "timeout_s": 8})
    with pytest.raises(DistributedError) as info:
        distributed.launch(DistributedCase(_with("ddp_models:hang_on_rank1"), 2), config)
    message = str(info.value)
    assert "timed out after 8 s (--trainperf-dist-timeout-s)" in message
    assert "rank 1: building the model" in message
    killed = [int(p) for p in message.split("process(es): ", 1)[1].splitlines()[0].split()]
    assert len(killed) >= 3  # torchrun and both ranks
    assert not any(child_process.alive(pid) for pid in killed)
    assert not _workers_alive()


def test_a_rendezvous_port_in_use_fails_at_once():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = LaunchConfig(**{**CONFIG.__dict__, "rdzv_endpoint": f"127.0.0.1:{listener.getsockname()[1]}"})
        with pytest.raises(DistributedError, match="already in use on this node"):
            distributed.launch(DistributedCase(TINY, 2), config)


# ---- the suite ---------------------------------------------------------------------------------------------


@pytest.fixture
def ddp_suite(pytester: pytest.Pytester):
    from conftest import PerfSuite

    return PerfSuite(pytester, distributed=True)


def test_suite_records_every_world_size_with_efficiency(ddp_suite, tmp_path):
    out = tmp_path / "run.json"
    result = ddp_suite.pytester.runpytest(*DDP_OPTIONS, "-m", "distributed", f"--benchmark-json={out}", "-rs")
    result.assert_outcomes(passed=2, skipped=2)  # CPU at world sizes 1 and 2; both CUDA cases skip here
    result.stdout.fnmatch_lines(
        [
            "distributed: torchrun per world size (auto); one node, standalone rendezvous on a free port; timeout 600*",
            "*test_ddp_train_step[[]cpu-*-ws2]*",
            "*CUDA is not available*",
        ]
    )
    doc = json.loads(out.read_text())
    by_size = {b["extra_info"]["world_size"]: b for b in doc["benchmarks"]}
    assert sorted(by_size) == [1, 2]
    one, two = by_size[1]["extra_info"], by_size[2]["extra_info"]
    assert one["scaling_efficiency"] == 1.0
    assert two["scaling_efficiency"] == pytest.approx(two["img_per_s"] / (2 * one["img_per_s"]), abs=1e-3)
    assert two["efficiency_reference_world_size"] == 1 and two["config"]["world_size"] == 2
    # CPU ranks get the same threads at every world size of the case, as a GPU rank gets one GPU
    assert (
        one["threads_per_rank"] == two["threads_per_rank"] == distributed.threads_per_rank(2, distributed.usable_cpus())
    )
    # pytest-benchmark's rounds are the ranks' training windows, per step (replayed as sleeps of each window's
    # length through its public pedantic, a step per iteration: never shorter, late by a scheduler tick at most),
    # not the launch around them
    stats, windows, steps = by_size[2]["stats"], two["window_s_rounds"], two["steps_per_round"]
    assert stats["iterations"] == steps
    replayed = [per_step * steps for per_step in stats["data"]]
    assert len(replayed) == len(windows)
    assert all(w <= r <= w + 0.05 for r, w in zip(replayed, windows, strict=True)), (replayed, windows)
    assert by_size[2]["group"] == "ddp_train_step" and two["launch_s"] > sum(two["window_s_rounds"])


def test_suite_fails_the_crashing_case_and_runs_the_others(ddp_suite, tmp_path):
    out = tmp_path / "run.json"
    result = ddp_suite.pytester.runpytest(
        *DDP_OPTIONS,
        "--trainperf-model=ddp_models:crash_on_rank1",
        "-m",
        "distributed and cpu",
        f"--benchmark-json={out}",
    )
    result.assert_outcomes(passed=1, failed=1)  # world size 1 has no rank 1
    result.stdout.fnmatch_lines(["*ws2*torchrun exited with 1*", "*RuntimeError: rank 1 crashed on purpose*"])
    assert [b["extra_info"]["world_size"] for b in json.loads(out.read_text())["benchmarks"]] == [1]
    assert not _workers_alive()


def test_suite_skips_world_sizes_beyond_this_node(ddp_suite):
    cores = distributed.usable_cpus()
    result = ddp_suite.pytester.runpytest(
        *DDP_OPTIONS, "-m", "distributed and cpu", f"--trainperf-world-sizes={cores + 1}", "-rs"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"*world size {cores + 1} needs {cores + 1} CPU cores per node; this node has {cores}*"]
    )


def test_distributed_benchmarks_are_gated_like_the_others(ddp_suite):
    from trainperf.machine.environment import environment_info
    from trainperf.machine.key import machine_key

    (ddp_suite.pytester.path / "baselines").mkdir()
    chosen = (*DDP_OPTIONS, "-m", "distributed and cpu")
    recorded = ddp_suite.pytester.runpytest(
        *chosen, "--trainperf-update-baselines", "--trainperf-record-min-runs=2", "--trainperf-record-max-runs=2"
    )
    assert recorded.ret == 0, recorded.stdout.str()
    path = ddp_suite.pytester.path / "baselines" / f"{machine_key(environment_info())}.json"
    doc = json.loads(path.read_text())
    ws2 = next(name for name in doc["benchmarks"] if name.endswith("-ws2]"))
    assert len(doc["benchmarks"]) == 2 and ws2.startswith("test_ddp_train_step[cpu-")
    entry = doc["benchmarks"][ws2]
    # far beyond the noise of two ranks sharing two cores (50% spread seen in CI): the fresh process that
    # confirms it sees the same 98% drop
    entry["samples"] = [v * 50 for v in entry["samples"]]
    entry["runs"] = [v * 50 for v in entry["runs"]]
    entry["img_per_s"] *= 50
    path.write_text(json.dumps(doc))
    gated = ddp_suite.pytester.runpytest(*chosen, "--trainperf-world-sizes=2")
    assert gated.ret == 1, gated.stdout.str()
    gated.stdout.fnmatch_lines(["*trainperf gate FAILED*", f"*{ws2.replace('[', '[[]')}*"])


def test_two_nodes_on_one_machine_record_the_case_once(ddp_suite, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), str(ddp_suite.pytester.path)])
    nodes = []
    for node in ("a", "b"):
        command = [
            sys.executable, "-m", "pytest", *DDP_OPTIONS, "-m", "distributed and cpu", "-rs",
            "--trainperf-nnodes=2", f"--trainperf-rdzv-endpoint=127.0.0.1:{port}", "--trainperf-world-sizes=2",
            "--trainperf-dist-timeout-s=120", f"--benchmark-json={tmp_path / node}.json",
        ]  # fmt: skip
        with (tmp_path / f"{node}.log").open("w") as log:
            nodes.append(subprocess.Popen(command, cwd=ddp_suite.pytester.path, env=env, stdout=log, stderr=log))
    try:
        codes = [p.wait(timeout=300) for p in nodes]
    finally:
        for p in nodes:
            p.kill()
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("a", "b")]
    assert codes == [0, 0], logs
    # exactly one node held global rank 0 and records the case; the other saves nothing and says why
    saved = [tmp_path / f"{n}.json" for n in ("a", "b")]
    recorded = [json.loads(p.read_text())["benchmarks"] if p.exists() else [] for p in saved]
    assert sorted(len(r) for r in recorded) == [0, 1]
    (bench,) = recorded[0] or recorded[1]
    assert bench["name"].endswith("-ws2-nodes2]") and bench["extra_info"]["nnodes"] == 2
    assert bench["extra_info"]["nproc_per_node"] == 1 and bench["extra_info"]["world_size"] == 2
    assert sum("ran on another node" in log for log in logs) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trainperf-nnodes=2",), "*--trainperf-nnodes 2: a multi-node run needs --trainperf-rdzv-endpoint*"),
        (
            ("--trainperf-nnodes=2", "--trainperf-rdzv-endpoint=h:1"),
            "*--trainperf-nnodes 2: a multi-node run needs explicit --trainperf-world-sizes*e.g. 2,4*",
        ),
        (
            ("--trainperf-nnodes=2", "--trainperf-rdzv-endpoint=h:1", "--trainperf-world-sizes=2,3"),
            "*--trainperf-world-sizes: got 2,3; expected multiples of --trainperf-nnodes 2*",
        ),
        (
            ("--trainperf-rdzv-endpoint=nohostport",),
            "*--trainperf-rdzv-endpoint: got 'nohostport'; expected HOST:PORT*",
        ),
        (("--trainperf-world-sizes=0",), "*--trainperf-world-sizes: got '0'; expected 'auto' or a comma-separated*"),
    ],
)
def test_bad_distributed_options_are_usage_errors(ddp_suite, args, message):
    result = ddp_suite.pytester.runpytest("--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_each_process_must_find_a_batch_in_its_shard(ddp_suite):
    # 2 processes of batch 64 need 128 images: each stages whole batches from its half of the dataset.
    args = ("--setup-plan", "-m", "distributed and cpu", "--trainperf-world-sizes=2", "--trainperf-batch-size=64")
    result = ddp_suite.pytester.runpytest(*args, "--trainperf-synthetic-images=100")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*-ws2?: batch 64 per process x 2 processes needs 128 images, more than the dataset's 100*"]
    )
    assert ddp_suite.pytester.runpytest(*args, "--trainperf-synthetic-images=128").ret == 0


def test_environment_variables_configure_a_multi_node_run(ddp_suite, monkeypatch):
    monkeypatch.setenv("TRAINPERF_NNODES", "2")
    monkeypatch.setenv("TRAINPERF_RDZV_ENDPOINT", "node0:29500")
    result = ddp_suite.pytester.runpytest(
        "--collect-only", "-q", "-m", "distributed and cpu", "--trainperf-world-sizes=2,4"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*-ws2-nodes2]", "*-ws4-nodes2]"])
