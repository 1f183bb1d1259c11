//! The paper's experiments on the 2D toy sets, built from the trainer, the batched
//! sampler, the labellers and the metrics: self-consuming training ([`recursive`]) and the
//! shared model settings ([`model`]).

pub mod model;
pub mod recursive;
