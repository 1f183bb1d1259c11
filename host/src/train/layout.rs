//! Offsets of the fifteen parameter tensors of the paper's tied residual MLP inside the
//! flat parameter vector, read from core's [`MlpShape::tensors`] (papers.md §1.2; the
//! layout is row-major `[out][in]` like PyTorch, tied block stored once as `temp_fc.0.*`).

use anyhow::{Result, bail};
use mirage_core::mlp::MlpShape;

/// Where each tensor starts in the flat parameter vector, plus the shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The network's shape (validated).
    pub shape: MlpShape,
    /// `t_proj.0.weight` `[W, E]`.
    pub t_w: usize,
    /// `t_proj.0.bias` `[W]`.
    pub t_b: usize,
    /// `in_fc.weight` `[W, D]`.
    pub in_w: usize,
    /// `temp_fc.0.norm1.weight` `[W]`.
    pub n1_g: usize,
    /// `temp_fc.0.norm1.bias` `[W]`.
    pub n1_b: usize,
    /// `temp_fc.0.fc1.weight` `[W, W]`.
    pub fc1: usize,
    /// `temp_fc.0.enc.weight` `[W, W]`.
    pub enc_w: usize,
    /// `temp_fc.0.enc.bias` `[W]`.
    pub enc_b: usize,
    /// `temp_fc.0.norm2.weight` `[W]`.
    pub n2_g: usize,
    /// `temp_fc.0.norm2.bias` `[W]`.
    pub n2_b: usize,
    /// `temp_fc.0.fc2.weight` `[W, W]`.
    pub fc2: usize,
    /// `out_norm.weight` `[W]`.
    pub no_g: usize,
    /// `out_norm.bias` `[W]`.
    pub no_b: usize,
    /// `out_fc.weight` `[D, W]`.
    pub out_w: usize,
    /// `out_fc.bias` `[D]`.
    pub out_b: usize,
    /// Total parameter count P.
    pub len: usize,
}

impl Layout {
    /// Reads the offsets of `shape`'s tensors by their PyTorch names.
    ///
    /// # Errors
    /// If the shape is invalid or core's tensor table lacks a name this trainer needs.
    pub fn new(shape: MlpShape) -> Result<Self> {
        shape
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid network shape {shape:?}: {e}"))?;
        let specs = shape.tensors();
        let find = |name: &str| -> Result<usize> {
            match specs.iter().find(|s| s.name == name) {
                Some(s) => Ok(s.offset),
                None => bail!("core's MLP layout has no tensor {name}"),
            }
        };
        Ok(Self {
            shape,
            t_w: find("t_proj.0.weight")?,
            t_b: find("t_proj.0.bias")?,
            in_w: find("in_fc.weight")?,
            n1_g: find("temp_fc.0.norm1.weight")?,
            n1_b: find("temp_fc.0.norm1.bias")?,
            fc1: find("temp_fc.0.fc1.weight")?,
            enc_w: find("temp_fc.0.enc.weight")?,
            enc_b: find("temp_fc.0.enc.bias")?,
            n2_g: find("temp_fc.0.norm2.weight")?,
            n2_b: find("temp_fc.0.norm2.bias")?,
            fc2: find("temp_fc.0.fc2.weight")?,
            no_g: find("out_norm.weight")?,
            no_b: find("out_norm.bias")?,
            out_w: find("out_fc.weight")?,
            out_b: find("out_fc.bias")?,
            len: shape.param_count(),
        })
    }

    /// `(D, W, E, blocks)`.
    #[must_use]
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (
            self.shape.dim,
            self.shape.width,
            self.shape.temb_dim,
            self.shape.blocks,
        )
    }
}
