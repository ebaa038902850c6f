"""GPU figures, for a machine with an NVIDIA GPU (prints "no GPU" and stops elsewhere):

1. vision encoders: seconds to embed a 151673-sized slice (3,639 patches) with each timm build on the
   GPU, random-init weights (the same forward cost as real ones), in float32 and bf16, through the
   forward loop `encode_model` uses; patch cutting is CPU work and is measured by bench_cache.py;
2. usage.json: a supervised run that holds GPU memory, as the supervisor reports it (NVML per process);
3. the dashboard's GPU panel over the real NVML (when textual is importable);
4. training on the GPU vs the CPU (staig_fusion, attention, SCAN on the demo slice): seconds and ARI
   per device (the same seed should score within 0.01).

Run: python benchmarks/bench_gpu.py [--n 3639] [--models uni2,uni,hipt,resnet50] [--batch 32]
     [--precision fp32,bf16]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

HOLD_GPU = ("import torch, time; x = torch.ones(3 << 30, dtype=torch.uint8, device='cuda'); "
            "print('holding', x.numel() >> 20, 'MiB', flush=True); time.sleep(12)")


def encoders(models: list[str], n: int, batch: int, precisions: list[str]) -> None:
    import numpy as np
    import torch

    from mihd.encoders.vision import build_model, embed_batches
    from mihd.encoders.vision_models import VISION_MODELS

    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}; {n} patches, batch {batch}, "
          "through encode_model's forward loop (embed_batches)")
    rng = np.random.default_rng(0)
    device = torch.device("cuda")
    for name in models:
        spec = VISION_MODELS[name]
        torch.manual_seed(0)
        model = build_model(name).eval().to(device)
        patches = rng.random((batch, spec.size, spec.size, 3), dtype=np.float32)  # reused: the cost is the forward
        outputs = {}
        for precision in precisions:
            embed_batches(model, spec, [patches], batch, device, precision)  # warm-up (autotune, allocator)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            batches = (patches[: min(batch, n - i)] for i in range(0, n, batch))
            started = time.perf_counter()
            outputs[precision] = embed_batches(model, spec, batches, n, device, precision)
            torch.cuda.synchronize()
            secs = time.perf_counter() - started
            print(f"  {name:9s} {precision}: {secs:6.2f} s for the slice, {n / secs:7.0f} patches/s, "
                  f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
        if len(outputs) == 2:
            a, b = outputs.values()
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            print(f"  {name:9s} {' vs '.join(outputs)}: cosine per patch min {cos.min():.4f}, mean {cos.mean():.5f}")
        del model
        torch.cuda.empty_cache()


def usage_of_a_gpu_run() -> None:
    from mihd.runs.usage import read_usage

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        proc = subprocess.Popen([sys.executable, "-m", "mihd.runs.supervise", str(run_dir), "--",
                                 sys.executable, "-c", HOLD_GPU], cwd=REPO)
        seen = []
        while proc.poll() is None:
            time.sleep(1.0)
            u = read_usage(run_dir)
            if u:
                seen.append((u["gpu_mem"], u["rss"], u["cpu_percent"]))
        final = read_usage(run_dir) or {}
        gpu = [g for g, _, _ in seen if g is not None]
        print(f"usage.json of a run holding 3 GiB on the GPU: {len(seen)} reads, GPU memory seen "
              f"{max(gpu) / 2**30 if gpu else 0:.2f} GiB at most; final peak {final.get('peak')}")
        print("  run.log:", (run_dir / "run.log").read_text().strip().splitlines()[-2:])


def training_devices() -> None:
    from mihd.data import load_slice
    from mihd.extract import get_embedding
    from mihd.fusion import run_cell_arrays
    from mihd.metrics import ari
    from mihd.pipeline import default_n_clusters
    from mihd.scan import scan_refine

    with tempfile.TemporaryDirectory() as tmp:
        adata = load_slice("demo", root=Path(tmp))
        gene = get_embedding(adata, "gene", "pca", root=Path(tmp)).embedding
        vision = get_embedding(adata, "vision", "texture", root=Path(tmp)).embedding
    truth, coords, k = adata.obs["truth"].to_numpy(), adata.obsm["spatial"], default_n_clusters(adata, None)
    for fusion in ("staig_fusion", "attention", "scan"):
        scores = {}
        for device in ("cpu", "cuda"):
            started = time.perf_counter()
            if fusion == "scan":
                labels = scan_refine(vision.array, k, seed=0, device=device).argmax(1)
            else:
                labels = run_cell_arrays(gene, vision, coords, fusion=fusion, cluster="gmm", n_clusters=k,
                                         device=device)[0]
            scores[device] = (time.perf_counter() - started, ari(labels, truth))
        print(f"training {fusion:12s} " + ", ".join(f"{d}: {s:6.1f} s ARI {a:.3f}" for d, (s, a) in scores.items())
              + f"; ARI difference {abs(scores['cpu'][1] - scores['cuda'][1]):.4f}", flush=True)


async def dashboard_gpu_panel() -> None:
    from mihd_tui.app import MihdApp
    from mihd_tui.widgets.gpu_panel import GpuPanel

    with tempfile.TemporaryDirectory() as tmp:
        app = MihdApp(Path(tmp), interval=0.5, setup_demo=False)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 20
            while not (app.snapshot is not None and app.snapshot.gpu) and time.monotonic() < deadline:
                await pilot.pause(0.2)
            await pilot.press("3")
            await pilot.pause(2.0)
            panel = app.screen.query_one(GpuPanel)
            names = [str(w.render()) for w in panel.query(".gpu-name")]
            print(f"dashboard GPU panel: {names or str(panel.query_one('#gpu-none').render())}")
            print(f"  header: {app.screen.query_one('#header').render()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3639)
    parser.add_argument("--models", default="uni2,uni,hipt,resnet50")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--precision", default="fp32,bf16")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no GPU: nothing to measure here")
        return
    encoders(args.models.split(","), args.n, args.batch, args.precision.split(","))
    training_devices()
    usage_of_a_gpu_run()
    from importlib.util import find_spec

    if find_spec("textual") is None:
        print("textual is not installed here: dashboard check skipped")
        return
    asyncio.run(dashboard_gpu_panel())


if __name__ == "__main__":
    main()
