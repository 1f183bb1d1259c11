#!/usr/bin/env python3
"""PyTorch CUDA peer of `gpu_bench`: the paper's 2D sampler (67,074-parameter tied residual
MLP, T = 1000 ancestral DDPM steps, Hal over the last 10 x̂0) at batches 10³…10⁶ on the GPU,
beside which mirage-gpu's wgpu kernels are measured (README "GPU", gpu/device-check.sh).

The network, schedule and step are imported from the CPU peer (../shared/peers/peer_torch.py,
passed with --peer), so both peers run the same model; only the device differs. The time
branch is computed once per step (the peer's item 1b), as mirage does. Two variants:
  eager  one Python-driven step per t (kernel launches dominate at small batches);
  graph  one step captured as a CUDA graph and replayed per t (launch overhead removed),
         the fastest plain-PyTorch loop; noise comes from the graph-safe CUDA generator.
Weights are random (Xavier, seed 1234); x̂0 is clipped to ±3 inside the step, as
gpu_bench does, so the untrained chain stays finite; the cost per step is the paper's.

Usage: python3 gpu/peer_cuda.py --peer ../shared/peers/peer_torch.py [--batches 1000 10000]
Prints JSON Lines, each row as soon as it is measured (a run cut short keeps what it did).
"""
import argparse
import importlib.util
import json
import time

import torch


def load_peer(path):
    spec = importlib.util.spec_from_file_location("peer_torch", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def step(peer, model, C, x, t, noise):
    """One reverse step of the peer with x̂0 clipped to ±3 (gpu_bench's setting)."""
    eps = model(x, t)
    x0 = peer._ex(C.sqrt_recip_ab, t) * x - peer._ex(C.sqrt_recip_m1_ab, t) * eps
    x0 = x0.clamp(-3.0, 3.0)
    mean = peer._ex(C.coef1, t) * x0 + peer._ex(C.coef2, t) * x
    nonzero = (t > 0).to(x.dtype).view(-1, 1)
    return mean + nonzero * torch.exp(0.5 * peer._ex(C.logvar, t)) * noise, x0


def run_eager(peer, model, C, batch, steps):
    x = torch.randn(batch, peer.DIM, device="cuda")
    hist = torch.empty(peer.HAL_K, batch, peer.DIM, device="cuda")
    t = torch.empty((1,), dtype=torch.int64, device="cuda")
    for ti in range(steps - 1, -1, -1):
        t.fill_(ti)
        x, x0 = step(peer, model, C, x, t, torch.randn_like(x))
        if ti < peer.HAL_K:
            hist[ti].copy_(x0)
    return x, peer.hal_from_hist(hist)


def run_graph(peer, model, C, batch, steps):
    x = torch.randn(batch, peer.DIM, device="cuda")
    x0 = torch.empty_like(x)
    t = torch.full((1,), steps - 1, dtype=torch.int64, device="cuda")
    hist = torch.empty(peer.HAL_K, batch, peer.DIM, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on a side stream, as capture requires
        for _ in range(3):
            step(peer, model, C, x.clone(), t, torch.randn_like(x))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        nx, nx0 = step(peer, model, C, x, t, torch.randn_like(x))
        x.copy_(nx)
        x0.copy_(nx0)
    x.normal_()
    for ti in range(steps - 1, -1, -1):
        t.fill_(ti)
        graph.replay()
        if ti < peer.HAL_K:
            hist[ti].copy_(x0)
    return x, peer.hal_from_hist(hist)


def timed(fn, steps, repeats):
    """Fastest of `repeats` full calls after a 20-step warm-up (kernels loaded, memory pooled)."""
    fn(min(steps, 20))
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        x, hal = fn(steps)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, bool(torch.isfinite(x).all() and torch.isfinite(hal).all())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", required=True, help="path of ../shared/peers/peer_torch.py")
    ap.add_argument("--batches", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--eager-max", type=int, default=100_000,
                    help="largest batch also run eagerly (at large batches eager = graph)")
    args = ap.parse_args()
    peer = load_peer(args.peer)
    torch.manual_seed(peer.SEED)
    torch.backends.cuda.matmul.allow_tf32 = False  # plain f32, as mirage's kernels
    model = peer.Decoder().cuda().eval()
    C = peer.Consts()
    for k in ("sqrt_recip_ab", "sqrt_recip_m1_ab", "coef1", "coef2", "logvar"):
        setattr(C, k, getattr(C, k).cuda())
    per_sample, x_path, shared = peer.flops_per_sample()
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "flop_per_sample_step_x_path": x_path}), flush=True)
    with torch.inference_mode():
        for b in args.batches:
            for name, fn in (("graph", run_graph), ("eager", run_eager)):
                if name == "eager" and b > args.eager_max:
                    continue
                secs, finite = timed(lambda s: fn(peer, model, C, b, s), args.steps, args.repeats)
                print(json.dumps({"variant": name, "batch": b, "steps": args.steps, "seconds": secs,
                                  "sample_steps_per_s": b * args.steps / secs,
                                  "gflops": (b * x_path + shared) * args.steps / secs / 1e9,
                                  "finite": finite}), flush=True)


if __name__ == "__main__":
    main()
