#!/usr/bin/env python3
"""PyTorch peer of `mirage images bench`: the same U-Net (host/src/images/unet/net.rs),
the same batch, timed the same way (training steps: forward + ε-MSE backward + Adam;
then forward passes at one shared t). Prints one JSON object.

    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch
    /tmp/venv-torch/bin/python host/benches/unet_torch.py --side 32 --channels 16,32 --batch 32 --steps 10
    ./target/release/mirage images bench --side 32 --channels 16,32 --batch 32 --steps 10

Run them back to back: the machines are shared and noisy.
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoid(t, dim):
    half = dim // 2
    c = math.log(1e4) / (half - 1)
    freqs = torch.exp(-torch.arange(half, dtype=torch.float32) * c)
    arg = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class Res(nn.Module):
    def __init__(self, cin, cout, tc, groups):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.tp = nn.Linear(tc, cout)
        self.n2, self.c2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x))) + self.tp(temb)[:, :, None, None]
        return self.c2(F.silu(self.n2(h))) + self.skip(x)


class UNet(nn.Module):
    def __init__(self, c1, c2, e, tc, groups):
        super().__init__()
        self.e = e
        self.time = nn.Linear(e, tc)
        self.conv_in = nn.Conv2d(1, c1, 3, padding=1)
        self.b = nn.ModuleList([Res(c1, c1, tc, groups), Res(c1, c2, tc, groups), Res(c2, c2, tc, groups),
                                Res(2 * c2, c2, tc, groups), Res(c2 + c1, c1, tc, groups)])
        self.n_out, self.conv_out = nn.GroupNorm(groups, c1), nn.Conv2d(c1, 1, 3, padding=1)

    def forward(self, x, t):
        temb = F.silu(self.time(sinusoid(t, self.e)))
        r1 = self.b[0](self.conv_in(x), temb)
        r2 = self.b[1](F.avg_pool2d(r1, 2), temb)
        m = self.b[2](F.avg_pool2d(r2, 2), temb)
        r3 = self.b[3](torch.cat([F.interpolate(m, scale_factor=2, mode="nearest"), r2], 1), temb)
        r4 = self.b[4](torch.cat([F.interpolate(r3, scale_factor=2, mode="nearest"), r1], 1), temb)
        return self.conv_out(F.silu(self.n_out(r4)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--channels", default="16,32")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    c1, c2 = map(int, a.channels.split(","))
    net = UNet(c1, c2, 32, 64, 4)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x0 = torch.rand(a.batch, 1, a.side, a.side) * 2 - 1
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()

    def step():
        t = torch.randint(0, 1000, (a.batch,))
        eps = torch.randn_like(x0)
        xt = ab[t].sqrt()[:, None, None, None] * x0 + (1 - ab[t]).sqrt()[:, None, None, None] * eps
        loss = F.mse_loss(net(xt, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    train_s = time.perf_counter() - t0
    t = torch.full((a.batch,), 500)
    with torch.no_grad():
        net(x0, t)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            net(x0, t)
        fwd_s = time.perf_counter() - t0
    params = sum(q.numel() for q in net.parameters())
    print(json.dumps({"torch": torch.__version__, "threads": a.threads, "params": params, "batch": a.batch,
                      "train_images_per_s": a.steps * a.batch / train_s,
                      "forward_images_per_s": a.steps * a.batch / fwd_s}))


if __name__ == "__main__":
    main()
