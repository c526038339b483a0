"""The suite's own overhead: harness windows (sampler thread, per-round marks, timing) against a bare loop.

    python scripts/overhead.py [--device cpu] [--model resnet18] [--batch-size 32] [--steps 10] [--blocks 6]
                               [--precision fp32] [--memory-format contiguous] [--optimizer foreach]

Runs the same trainer alternately as a bare loop (steps, one synchronize) and through ``measure.train_step``
with the real sampler, block by block so drift on the machine hits both alike, and prints the median img/s of
each and the overhead.  Eager only: the harness adds the same per-window work to a compiled step, and a
measurement of a compiled case must compile in its own warm-up.  The target is <= 2%; above it the script exits 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from trainperf.machine.environment import apply_backend_flags
from trainperf.measurement import measure
from trainperf.measurement.cases import Case
from trainperf.measurement.models import build_model
from trainperf.measurement.runnable import skip_reason
from trainperf.measurement.training import build_trainer, synchronize
from trainperf.pytest_edge.runner import make_sampler
from trainperf.settings import Settings


class Pedantic:
    """pytest-benchmark's pedantic loop without pytest: setup, then the timed target, ``rounds`` times."""

    def pedantic(self, target, setup=None, rounds=1, iterations=1, warmup_rounds=0):
        for _ in range(rounds):
            if setup is not None:
                setup()
            start = time.perf_counter()
            target()
            self.last = time.perf_counter() - start


TARGET = 0.02


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--memory-format", default="contiguous", choices=("contiguous", "channels_last"))
    parser.add_argument("--optimizer", default="foreach", choices=("foreach", "fused"))
    parser.add_argument("--steps", type=int, default=10, help="steps per window")
    parser.add_argument("--rounds", type=int, default=5, help="windows per block")
    parser.add_argument("--blocks", type=int, default=6, help="bare/harness block pairs")
    args = parser.parse_args()

    apply_backend_flags(tf32=True, cudnn_benchmark=True)
    case = Case(args.device, "eager", args.precision, args.memory_format, args.model, args.batch_size, args.optimizer)
    if refusal := skip_reason(args.device, case):  # what the suite would skip this case for
        print(f"overhead.py: {case.id}: {refusal}", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    trainer = build_trainer(case, build_model(case.model))
    g = torch.Generator().manual_seed(0)
    trainer.batches = [
        trainer.to_input(torch.randn(args.batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (args.batch_size,)))
        for _ in range(4)
    ]
    trainer.run(5)
    synchronize(trainer.device)
    settings = Settings()
    images = args.batch_size * args.steps
    bare: list[float] = []
    harness: list[float] = []
    for _ in range(args.blocks):
        for _ in range(args.rounds):
            start = time.perf_counter()
            trainer.run(args.steps)
            synchronize(trainer.device)
            bare.append(images / (time.perf_counter() - start))
        result = measure.train_step(
            Pedantic(),
            trainer,
            make_sampler(trainer.device, settings),
            warmup_steps=1,
            rounds=args.rounds,
            window_s=1.0,
            steps=args.steps,
        )
        harness.extend(result.throughput.img_per_s_rounds)
    b, h = statistics.median(bare), statistics.median(harness)
    print(f"case {case.id}: {len(bare)} bare and {len(harness)} harness windows of {args.steps} steps")
    print(f"bare    median {b:10.1f} img/s  spread {measure.spread(bare):.1%}")
    print(f"harness median {h:10.1f} img/s  spread {measure.spread(harness):.1%}")
    overhead = (b - h) / b
    print(f"overhead {overhead:+.2%} (target <= {TARGET:.0%}){'' if overhead <= TARGET else ': ABOVE TARGET'}")
    return 0 if overhead <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
