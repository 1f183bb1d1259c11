//! `mirage images bench` (the lead may alias it as `mirage bench unet`): U-Net training and
//! sampling throughput on the CPU, in images/s and GFLOP/s (FLOPs from
//! [`super::unet::forward_flops`]; a training step counts 3× a forward pass), next to the
//! machine's sgemm rate on one image's GEMM of the net's largest convolution (the roofline
//! the im2col design can reach). `host/benches/unet_torch.py` times the same net in PyTorch.

use std::time::Instant;

use anyhow::Result;

use super::unet::layers::col_ld;
use super::unet::train::{UnetTrainConfig, train};
use super::unet::{Real, UnetConfig, UnetLayout, forward_flops};

/// Results of one benchmark run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UnetBench {
    /// The net.
    pub config: UnetConfig,
    /// Parameters.
    pub params: usize,
    /// Batch.
    pub batch: usize,
    /// Training threads (batch shards); the forward timing runs on one.
    pub threads: usize,
    /// Forward FLOPs per image.
    pub forward_flops: f64,
    /// Training: images per second (forward + backward + Adam).
    pub train_images_per_s: f64,
    /// Training GFLOP/s (3 × forward FLOPs per image).
    pub train_gflops: f64,
    /// Inference (one sampler step): images per second.
    pub forward_images_per_s: f64,
    /// Inference GFLOP/s.
    pub forward_gflops: f64,
    /// sgemm GFLOP/s on the largest conv GEMM, one image's (C1 × 9·(C1+C2) × S²).
    pub gemm_gflops: f64,
}

/// Times `train_steps` training steps and `forward_reps` forward passes at `batch`.
///
/// # Errors
/// Invalid shape.
pub fn bench_unet(
    config: UnetConfig,
    batch: usize,
    train_steps: usize,
    forward_reps: usize,
    threads: usize,
) -> Result<UnetBench> {
    let layout = UnetLayout::new(config)?;
    let d = config.dim();
    let data: Vec<f32> = (0..batch * d)
        .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
        .collect();
    let tc = UnetTrainConfig {
        steps: 1,
        batch,
        lr: 1e-3,
        seed: 1,
        train_steps: 1000,
        beta: (1e-4, 0.02),
        threads,
    };
    train(config, &data, &tc, |_, _| {})?; // warm-up
    let start = Instant::now();
    train(
        config,
        &data,
        &UnetTrainConfig {
            steps: train_steps,
            ..tc
        },
        |_, _| {},
    )?;
    let train_s = start.elapsed().as_secs_f64();
    let params: Vec<f32> = layout.init(&mut mirage_core::noise::chacha_stream(1, 1));
    let t = vec![500u32; batch];
    let _ = layout.predict(&params, &data, &t)?;
    let start = Instant::now();
    for _ in 0..forward_reps {
        let _ = layout.predict(&params, &data, &t)?;
    }
    let fwd_s = start.elapsed().as_secs_f64();
    let f = forward_flops(&config);
    let (m, k, n, ld) = (config.c1, 9 * (config.c1 + config.c2), d, col_ld(d));
    let (a, b) = (vec![0.5f32; m * k], vec![0.25f32; k * ld]);
    let mut c = vec![0.0f32; m * n];
    let reps = 20 * batch;
    let start = Instant::now();
    for _ in 0..reps {
        f32::gemm(m, k, n, 1.0, &a, k, 1, &b, ld, 1, 0.0, &mut c, n);
    }
    let gemm_s = start.elapsed().as_secs_f64();
    let train_ips = (train_steps * batch) as f64 / train_s;
    let fwd_ips = (forward_reps * batch) as f64 / fwd_s;
    Ok(UnetBench {
        config,
        params: layout.param_count(),
        batch,
        threads,
        forward_flops: f,
        train_images_per_s: train_ips,
        train_gflops: train_ips * 3.0 * f / 1e9,
        forward_images_per_s: fwd_ips,
        forward_gflops: fwd_ips * f / 1e9,
        gemm_gflops: (2 * m * k * n * reps) as f64 / gemm_s / 1e9,
    })
}
