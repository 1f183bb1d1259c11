//! Weights in and out of the trainer: the PyTorch-named safetensors file of the paper's
//! `state_dict` (papers.md §1.2 "Network") and the `.mrg` model file.
//!
//! The paper's model repeats one `TemporalLayer` object, so its `state_dict` holds the tied
//! block once per application: `temp_fc.0.*`, `temp_fc.1.*`, `temp_fc.2.*`, identical
//! values (31 tensors for 3 blocks). Export writes every copy; import infers the shape from
//! the tensor shapes, requires exactly the expected names, F32, and bit-identical copies.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context, Result, bail, ensure};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use mirage_core::format::{ModelFile, ModelHeader, encoded_len, write_model};
use mirage_core::mlp::{Mlp, MlpShape, TensorSpec};
use mirage_core::sampler::Prediction;
use mirage_core::schedule::BetaSchedule;

const BLOCK_PREFIX: &str = "temp_fc.0.";

/// PyTorch tensor shape of a layout entry: `[rows, cols]` for Linear weights, `[rows]`
/// for biases and LayerNorm parameters.
fn torch_shape(spec: &TensorSpec) -> Vec<usize> {
    if spec.name.ends_with("weight") && !spec.name.contains("norm") {
        vec![spec.rows, spec.cols]
    } else {
        vec![spec.rows]
    }
}

/// Every (state_dict name, layout entry) pair, the tied block once per application.
fn state_dict_names(shape: MlpShape) -> Vec<(String, TensorSpec)> {
    let mut out = Vec::new();
    for spec in shape.tensors() {
        match spec.name.strip_prefix(BLOCK_PREFIX) {
            Some(rest) => {
                out.extend((0..shape.blocks).map(|k| (format!("temp_fc.{k}.{rest}"), spec)))
            }
            None => out.push((spec.name.to_string(), spec)),
        }
    }
    out
}

/// Serialises `params` (core's layout for `shape`) as safetensors with the paper's
/// `state_dict` names; `metadata` goes into the header's `__metadata__`.
///
/// # Errors
/// If `params` has the wrong length or serialisation fails.
pub fn to_safetensors(
    shape: MlpShape,
    params: &[f32],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    ensure!(
        params.len() == shape.param_count(),
        "{} parameters for a shape that needs {}",
        params.len(),
        shape.param_count()
    );
    let bytes: &[u8] = bytemuck::cast_slice(params);
    let mut views = Vec::new();
    for (name, spec) in state_dict_names(shape) {
        let data = &bytes[spec.offset * 4..(spec.offset + spec.elements()) * 4];
        let view = TensorView::new(Dtype::F32, torch_shape(&spec), data)
            .with_context(|| format!("tensor {name}"))?;
        views.push((name, view));
    }
    safetensors::serialize(views, metadata).context("cannot serialise safetensors")
}

fn dims_of(st: &SafeTensors<'_>, name: &str) -> Result<Vec<usize>> {
    Ok(st
        .tensor(name)
        .with_context(|| format!("missing tensor {name}"))?
        .shape()
        .to_vec())
}

/// Reads a PyTorch-named safetensors file of the paper's MLP: the inferred shape and the
/// flat parameters in core's layout.
///
/// # Errors
/// Not safetensors, a missing / extra / non-F32 / wrongly shaped tensor, tied-block
/// copies that differ, or non-finite weights — each named.
pub fn from_safetensors(bytes: &[u8]) -> Result<(MlpShape, Vec<f32>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("not a valid safetensors file: {e}"))?;
    let in_fc = dims_of(&st, "in_fc.weight")?;
    let t_proj = dims_of(&st, "t_proj.0.weight")?;
    ensure!(
        in_fc.len() == 2 && t_proj.len() == 2,
        "in_fc.weight and t_proj.0.weight must be matrices"
    );
    let names: BTreeSet<&str> = st.names().into_iter().collect();
    let blocks = (0..)
        .take_while(|k| names.contains(format!("temp_fc.{k}.fc1.weight").as_str()))
        .count();
    let shape = MlpShape {
        dim: in_fc[1],
        width: in_fc[0],
        blocks,
        temb_dim: t_proj[1],
    };
    shape
        .validate()
        .map_err(|e| anyhow::anyhow!("the tensors describe an invalid network {shape:?}: {e}"))?;
    let expected = state_dict_names(shape);
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let extra: Vec<&&str> = names.difference(&wanted).collect();
    ensure!(
        extra.is_empty(),
        "unexpected tensors for the paper's MLP: {extra:?}"
    );
    let mut params = vec![0.0f32; shape.param_count()];
    let mut seen = vec![false; shape.tensors().len()];
    for (name, spec) in &expected {
        let view = st
            .tensor(name)
            .with_context(|| format!("missing tensor {name}"))?;
        ensure!(
            view.dtype() == Dtype::F32,
            "tensor {name} is {:?}, expected F32",
            view.dtype()
        );
        let want = torch_shape(spec);
        ensure!(
            view.shape() == want.as_slice(),
            "tensor {name} has shape {:?}, expected {want:?}",
            view.shape()
        );
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        ensure!(
            values.iter().all(|v| v.is_finite()),
            "tensor {name} contains NaN or infinite values"
        );
        let idx = shape
            .tensors()
            .iter()
            .position(|s| s.offset == spec.offset)
            .unwrap_or(0);
        let dst = &mut params[spec.range()];
        if seen[idx] {
            if dst
                .iter()
                .zip(&values)
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                bail!("tensor {name} differs from temp_fc.0's copy: the blocks are not tied");
            }
        } else {
            dst.copy_from_slice(&values);
            seen[idx] = true;
        }
    }
    Ok((shape, params))
}

/// Encodes an ε-prediction `.mrg` model file (core `format::write_model`): the shape,
/// the β schedule of T steps with its full-T tables, and the parameters.
///
/// # Errors
/// Whatever core's writer refuses (invalid shape or schedule, wrong lengths, non-finite
/// weights), with the reason.
pub fn to_mrg(
    shape: MlpShape,
    train_steps: usize,
    beta: BetaSchedule<'_>,
    tables: &[f32],
    params: &[f32],
) -> Result<Vec<u8>> {
    let header = ModelHeader::new(shape, train_steps, beta, Prediction::Epsilon);
    let len =
        encoded_len(&header).map_err(|e| anyhow::anyhow!("cannot encode the model header: {e}"))?;
    let mut out = vec![0u8; len];
    let n = write_model(&header, tables, params, &mut out)
        .map_err(|e| anyhow::anyhow!("cannot write the model: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// File bytes held in 8-byte-aligned storage, as core's zero-copy parser requires.
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage.
    #[must_use]
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }

    /// Parses the bytes as a `.mrg` model file; `name` (the path) goes into the error.
    ///
    /// # Errors
    /// Core's typed parse error (bad magic, truncated, CRC, …), naming the file.
    pub fn model(&self, name: &str) -> Result<ModelFile<'_>> {
        ModelFile::parse(self.bytes())
            .map_err(|e| anyhow::anyhow!("{name}: not a valid .mrg model file: {e}"))
    }
}

/// The f32 network of `model` (file `name`), or an error saying what a fixed-point file is
/// for: the host's samplers, trainers and analysis tools read f32 models, while q8/q16
/// files run on the device (`core/embedded`) and in the fixed-vs-f32 comparison.
///
/// # Errors
/// `model` holds a q8 or q16 network.
pub fn f32_mlp<'a>(model: &ModelFile<'a>, name: &str) -> Result<Mlp<'a>> {
    model.mlp().map_err(|_| {
        anyhow::anyhow!(
            "{name} is a fixed-point ({:?}) model; this command needs the f32 model it was \
             quantised from (fixed-point files are for the device)",
            model.header().kind
        )
    })
}

/// Reads a file into [`AlignedBytes`].
///
/// # Errors
/// If the file cannot be read (naming it).
pub fn read_aligned(path: &std::path::Path) -> Result<AlignedBytes> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(AlignedBytes::new(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_writes_the_tied_block_per_application() {
        let shape = MlpShape {
            dim: 2,
            width: 8,
            blocks: 3,
            temb_dim: 8,
        };
        let params: Vec<f32> = (0..shape.param_count())
            .map(|i| i as f32 * 0.25 - 3.0)
            .collect();
        let bytes = to_safetensors(shape, &params, None).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.names().len(), 31);
        assert_eq!(
            st.tensor("temp_fc.2.fc2.weight").unwrap().data(),
            st.tensor("temp_fc.0.fc2.weight").unwrap().data()
        );
        let (s2, p2) = from_safetensors(&bytes).unwrap();
        assert_eq!((s2, p2), (shape, params));
    }

    #[test]
    fn mrg_round_trip_through_core_parser() {
        let shape = MlpShape {
            dim: 2,
            width: 8,
            blocks: 3,
            temb_dim: 8,
        };
        let params: Vec<f32> = (0..shape.param_count())
            .map(|i| (i % 17) as f32 * 0.1 - 0.8)
            .collect();
        let config = crate::train::TrainConfig {
            width: 8,
            temb_dim: 8,
            ..crate::train::TrainConfig::paper(2)
        };
        let tables = config.tables().unwrap();
        let bytes = to_mrg(shape, 1000, config.beta(), &tables, &params).unwrap();
        let aligned = AlignedBytes::new(&bytes);
        let model = aligned.model("m.mrg").unwrap();
        assert_eq!(model.header().shape, shape);
        assert_eq!(model.mlp().unwrap().params(), &params[..]);
        let mut bad = bytes.clone();
        bad[200] ^= 4;
        let err = AlignedBytes::new(&bad)
            .model("m.mrg")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("m.mrg"), "{err}");
    }

    #[test]
    fn untied_copies_and_bad_files_are_refused() {
        let shape = MlpShape {
            dim: 1,
            width: 8,
            blocks: 2,
            temb_dim: 8,
        };
        let params = vec![0.5f32; shape.param_count()];
        let good = to_safetensors(shape, &params, None).unwrap();
        // Change one value of the second copy only.
        let st = SafeTensors::deserialize(&good).unwrap();
        let mut views: Vec<(String, Vec<u8>, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.data().to_vec(), v.shape().to_vec()))
            .collect();
        for (n, d, _) in &mut views {
            if n == "temp_fc.1.enc.bias" {
                d[0..4].copy_from_slice(&1.5f32.to_le_bytes());
            }
        }
        let tv: Vec<(String, TensorView<'_>)> = views
            .iter()
            .map(|(n, d, s)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
                )
            })
            .collect();
        let bad = safetensors::serialize(tv, None).unwrap();
        let err = from_safetensors(&bad).unwrap_err().to_string();
        assert!(
            err.contains("temp_fc.1.enc.bias") && err.contains("tied"),
            "{err}"
        );
        assert!(from_safetensors(&good[..good.len() - 3]).is_err());
        assert!(
            from_safetensors(b"nonsense")
                .unwrap_err()
                .to_string()
                .contains("safetensors")
        );
    }
}
