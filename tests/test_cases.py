from __future__ import annotations

import pytest

from trainperf.measurement import cases
from trainperf.measurement.cases import Case, LoaderCase, build_matrix, compile_matrix, loader_matrix


def test_ids_are_readable_and_stable():
    case = Case("cuda", "reduce-overhead", "bf16", "channels_last", "resnet18_cifar", 128, "fused")
    assert case.id == "cuda-reduce_overhead-bf16-channels_last-resnet18_cifar-b128-fused"
    assert Case("cpu", "eager", "fp32", "contiguous", "mypkg.models:tiny", 8, "foreach").id == (
        "cpu-eager-fp32-contiguous-mypkg.models.tiny-b8-foreach"
    )


def test_default_matrix_covers_the_article_and_the_fast_path():
    ids = [c.id for c in build_matrix("default", {})]
    assert ids[0] == "cpu-eager-fp32-contiguous-resnet18-b128-foreach"
    assert "cuda-eager-fp32-contiguous-resnet18-b128-foreach" in ids
    assert "cuda-default-fp32-contiguous-resnet18-b128-foreach" in ids
    assert "cuda-reduce_overhead-bf16-channels_last-resnet18_cifar-b128-fused" in ids
    # the fused-versus-foreach pair differs in the optimizer only
    assert "cuda-eager-bf16-channels_last-resnet18_cifar-b128-fused" in ids
    assert "cuda-eager-bf16-channels_last-resnet18_cifar-b128-foreach" in ids
    # the peak case: the fastest configuration, at a batch large enough to keep an H100/H200 busy
    assert ids[-1] == cases.PEAK_CASE.id == "cuda-reduce_overhead-bf16-channels_last-resnet18_cifar-b1024-fused"
    assert len(ids) == len(set(ids))
    assert all(c.unsupported_reason() is None for c in build_matrix("default", {}))


def test_mps_case_only_where_mps_is_present():
    assert not any(c.device == "mps" for c in build_matrix("default", {}))
    assert any(c.device == "mps" for c in build_matrix("default", {}, mps_available=True))


def test_override_replaces_an_axis_and_dedupes():
    got = build_matrix("default", {"device": ("cpu",)})
    assert {c.device for c in got} == {"cpu"}
    # seven default cases collapse to their distinct CPU versions
    assert len(got) == len({c.id for c in got}) == 6
    sizes = build_matrix("default", {"batch_size": (64, 256), "device": ("cpu",), "compile": ("eager",)})
    assert {c.batch_size for c in sizes} == {64, 256}
    assert all(c.compile == "eager" for c in sizes)


def test_override_keeps_unsupported_combinations_for_an_explicit_skip():
    got = build_matrix("default", {"device": ("cpu",), "compile": ("reduce-overhead",)})
    assert got and all(c.unsupported_reason() for c in got)
    assert "CUDA only" in got[0].unsupported_reason()


def test_full_matrix_drops_what_cannot_run_anywhere():
    full = build_matrix("full", {})
    assert all(c.unsupported_reason() is None for c in full)
    assert not any(c.device == "cpu" and c.compile == "reduce-overhead" for c in full)
    assert any(c.device == "cuda" and c.precision == "fp16" for c in full)
    assert len(full) > 50


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        (Case("cpu", "max-autotune", "fp32", "contiguous", "resnet18", 8, "foreach"), "CUDA only"),
        (Case("cpu", "eager", "fp16", "contiguous", "resnet18", 8, "foreach"), "fp16"),
        (Case("mps", "eager", "fp32", "contiguous", "resnet18", 8, "fused"), "MPS"),
    ],
)
def test_unsupported_reasons(case, fragment):
    assert fragment in case.unsupported_reason()


def test_bad_matrix_and_axis_are_rejected():
    with pytest.raises(ValueError, match="matrix"):
        build_matrix("huge", {})
    with pytest.raises(ValueError, match="axes"):
        build_matrix("default", {"colour": ("red",)})


def test_loader_matrix_pins_only_with_a_device_to_copy_to():
    got = loader_matrix(["cpu", "cuda", "cpu"], (0, 2))
    ids = [c.id for c in got]
    assert ids == [
        "cpu-w0-nopin",
        "cpu-w2-nopin",
        "cpu-resident",
        "cuda-w0-nopin",
        "cuda-w0-pin",
        "cuda-w2-nopin",
        "cuda-w2-pin",
        "cuda-resident",
    ]
    assert LoaderCase("cuda", None, False).id == "cuda-resident"


def test_compile_matrix_keeps_compiled_cases():
    got = compile_matrix(build_matrix("default", {}))
    assert got and all(c.compiled for c in got)
    assert {c.compile for c in got} == {"default", "reduce-overhead"}
    assert cases.CUDAGRAPH_MODES == ("reduce-overhead", "max-autotune")
    assert got[-1].cudagraphs and not got[0].cudagraphs
