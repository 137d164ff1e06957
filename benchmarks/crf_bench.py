"""Benchmark: the CRF layer's windowed message passing, ConvCRF's way and ours, in one process.

The established way to truncate dense-CRF kernels to a window (ConvCRF, Teichmann and Cipolla
2019) gathers every neighbour with `F.unfold` into a (B, C, window², H, W) tensor and reduces it
with the kernel. Ours (`toposweep.models.unet_crf.MeanFieldCRF`) adds one shifted slice of the
padded marginals per neighbour offset, with the spatial and bilateral kernels combined once per
forward. Both compute the same mean-field iterations (checked to 1e-5 here); timed: forward, and
forward + backward (training), each the median of `--repeats` runs after one warm-up.

Cases: the small `shapes` study (batch 16, 32 x 32) and the paper's images (batch 2, 224 x 224),
3 classes, 5 iterations, window 7. Writes results/benchmarks/crf.json and prints a table.

    python benchmarks/crf_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from toposweep.io import write_json  # noqa: E402
from toposweep.models.unet_crf import MeanFieldCRF  # noqa: E402


def unfold_forward(crf: MeanFieldCRF, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """ConvCRF-style mean field: neighbours gathered by unfold, kernels as one stacked tensor."""
    batch, classes, height, width = logits.shape
    window = 2 * crf.radius + 1
    centre = window * window // 2
    kernel = (crf.spatial_weight * crf.spatial_kernel.reshape(1, -1, 1, 1)
              + crf.bilateral_weight * crf.bilateral_kernel(image))  # (B, window² - 1, H, W)
    log_q = F.log_softmax(logits, dim=1)
    for _ in range(crf.iterations):
        columns = F.unfold(log_q.exp(), window, padding=crf.radius)
        columns = columns.view(batch, classes, window * window, height, width)
        neighbours = torch.cat([columns[:, :, :centre], columns[:, :, centre + 1 :]], dim=2)
        messages = (neighbours * kernel.unsqueeze(1)).sum(dim=2)
        pairwise = torch.einsum("lm,bmhw->blhw", crf.compatibility, messages)
        log_q = F.log_softmax(logits - pairwise, dim=1)
    return log_q


def median_seconds(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(shape: tuple[int, int, int, int], repeats: int) -> dict:
    torch.manual_seed(0)
    crf = MeanFieldCRF(shape[1], iterations=5, window=7)
    with torch.no_grad():
        crf.compatibility.add_(0.3 * torch.randn_like(crf.compatibility))
    logits, image = 3 * torch.randn(shape), torch.randn(shape)
    ours, unfold = crf(logits, image), unfold_forward(crf, logits, image)
    difference = float((ours - unfold).detach().abs().max())
    assert difference < 1e-5, f"the two implementations differ by {difference}"
    result = {"shape": list(shape), "max_abs_difference": difference}
    for name, forward in (("unfold", unfold_forward), ("ours", MeanFieldCRF.__call__)):
        with torch.no_grad():
            result[f"{name}_forward_s"] = median_seconds(lambda: forward(crf, logits, image), repeats)
        result[f"{name}_forward_backward_s"] = median_seconds(
            lambda: forward(crf, logits, image).sum().backward(), repeats)
    result["forward_speedup"] = result["unfold_forward_s"] / result["ours_forward_s"]
    result["forward_backward_speedup"] = (result["unfold_forward_backward_s"]
                                          / result["ours_forward_backward_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller images, fewer repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--output", type=Path, default=REPO / "results/benchmarks/crf.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    shapes = [(16, 3, 32, 32), (2, 3, 64, 64)] if args.quick else [(16, 3, 32, 32), (2, 3, 224, 224)]
    repeats = args.repeats or (3 if args.quick else 7)
    report = {"threads": torch.get_num_threads(), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "repeats": repeats,
              "cases": [measure(shape, repeats) for shape in shapes]}
    write_json(args.output, report)
    print("| batch × classes × H × W | forward: unfold → ours | forward + backward: unfold → ours |")
    print("|---|---|---|")
    for case in report["cases"]:
        print(f"| {' × '.join(map(str, case['shape']))} "
              f"| {case['unfold_forward_s'] * 1e3:.0f} → {case['ours_forward_s'] * 1e3:.0f} ms "
              f"(**{case['forward_speedup']:.1f}×**) "
              f"| {case['unfold_forward_backward_s'] * 1e3:.0f} → {case['ours_forward_backward_s'] * 1e3:.0f} ms "
              f"(**{case['forward_backward_speedup']:.1f}×**) |")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
