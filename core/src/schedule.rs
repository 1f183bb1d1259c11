//! Noise schedules: β_t computed in f64, respaced, and shared by every path as f32 tables.
//!
//! Forward process (Ho et al. 2020; notation of `papers.md`): α_t = 1 − β_t,
//! ᾱ_t = ∏_{s≤t} α_s, ᾱ_{−1} = 1, q(x_t | x0) = N(√ᾱ_t x0, (1 − ᾱ_t) I), and the posterior
//! q(x_{t−1} | x_t, x0) = N(c1_t x0 + c2_t x_t, β̃_t I) with
//!
//! ```text
//! c1_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t),   c2_t = √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t),
//! β̃_t  = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).
//! ```
//!
//! β schedules: linear (the paper's `linspace(1e−3, 0.2, 1000)`, Aithal et al. 2024, and DDPM's
//! `linspace(1e−4, 0.02, 1000)`), scaled-linear (`linspace(√start, √end, T)²`, Stable Diffusion),
//! the ADM cosine schedule (Nichol & Dhariwal 2021: ᾱ(u) = cos²((u + 0.008)/1.008 · π/2),
//! β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), max_beta)), and a caller's list (`papers.md` §1.2, §2.2).
//!
//! Respacing to n of the T training steps keeps ᾱ at the chosen timesteps τ and sets
//! β'_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}} (ᾱ_{τ_{−1}} = 1), which is computed as the running product
//! ∏_{τ_{i−1} < s ≤ τ_i} α_s so that it is exact (β'_i = β_{τ_i}) when no step is skipped and
//! free of cancellation when β' ≈ 1. The network always receives the original τ_i.
//!
//! Precision (`papers.md` §1.3.1, §1.3.3): ᾱ_999 of the paper schedule is 1.29e−47, below
//! f32's range, so every derived coefficient (√ᾱ, 1/√ᾱ, √(1/ᾱ − 1), c1, c2, σ, …) is computed
//! in f64 from the f64 ᾱ and only then rounded to f32; 1 − ᾱ is accumulated as
//! (1 − ᾱ_{t−1}) + β_t ᾱ_{t−1}, never as a subtraction. The stored `AlphaBar` may be 0 or
//! subnormal; no table entry is NaN or infinite (otherwise [`compute_tables`] fails).

use crate::error::Error;
use crate::math::sqrt_f64;

mod table_set;
pub use table_set::TableSet;

/// A β schedule over the T training steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BetaSchedule<'a> {
    /// β_t = linspace(start, end, T)_t (numpy's `linspace`: start + t·(end − start)/(T − 1),
    /// the last entry exactly `end`).
    Linear {
        /// β_0, in (0, 1).
        start: f64,
        /// β_{T−1}, in (0, 1).
        end: f64,
    },
    /// β_t = linspace(√start, √end, T)_t² (diffusers' `scaled_linear`, here in f64).
    ScaledLinear {
        /// β_0, in (0, 1).
        start: f64,
        /// β_{T−1}, in (0, 1).
        end: f64,
    },
    /// ADM `squaredcos_cap_v2`: β_i = min(1 − ᾱ((i+1)/T)/ᾱ(i/T), max_beta) with
    /// ᾱ(u) = cos²((u + 0.008)/1.008 · π/2).
    Cosine {
        /// Cap on every β, in (0, 1); ADM uses 0.999.
        max_beta: f64,
    },
    /// A caller's list, one β per training step (length T), each in (0, 1).
    Custom(&'a [f64]),
}

/// The cosine schedule's offset s (Nichol & Dhariwal 2021).
const COSINE_OFFSET: f64 = 0.008;

impl BetaSchedule<'_> {
    /// The paper's schedule (Aithal et al. 2024, `papers.md` §1.2): linspace(1e−3, 0.2, T).
    pub const PAPER: BetaSchedule<'static> = BetaSchedule::Linear {
        start: 1e-3,
        end: 0.2,
    };
    /// The DDPM schedule (Ho et al. 2020): linspace(1e−4, 0.02, T).
    pub const DDPM: BetaSchedule<'static> = BetaSchedule::Linear {
        start: 1e-4,
        end: 0.02,
    };
    /// The ADM cosine schedule with β capped at 0.999.
    pub const COSINE: BetaSchedule<'static> = BetaSchedule::Cosine { max_beta: 0.999 };

    /// Checks the schedule's parameters for `train_steps` training steps.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `train_steps` is 0 or a parameter (start, end, max_beta, or
    /// any listed β) is not a finite number in (0, 1); [`Error::LengthMismatch`] if a custom
    /// list does not hold exactly `train_steps` values.
    pub fn validate(&self, train_steps: usize) -> Result<(), Error> {
        if train_steps == 0 {
            return Err(Error::InvalidParameter("train_steps must be at least 1"));
        }
        let in_unit = |b: f64| b > 0.0 && b < 1.0;
        match *self {
            Self::Linear { start, end } | Self::ScaledLinear { start, end } => {
                if !in_unit(start) || !in_unit(end) {
                    return Err(Error::InvalidParameter("beta start/end must lie in (0, 1)"));
                }
            }
            Self::Cosine { max_beta } => {
                if !in_unit(max_beta) {
                    return Err(Error::InvalidParameter(
                        "cosine max_beta must lie in (0, 1)",
                    ));
                }
            }
            Self::Custom(betas) => {
                if betas.len() != train_steps {
                    return Err(Error::LengthMismatch("custom beta list vs train_steps"));
                }
                if !betas.iter().all(|&b| in_unit(b)) {
                    return Err(Error::InvalidParameter(
                        "custom beta values must lie in (0, 1)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// β_t (f64) of training step `t` out of `train_steps`.
    ///
    /// # Errors
    /// As [`BetaSchedule::validate`], and [`Error::StepOutOfRange`] if `t ≥ train_steps`.
    pub fn beta(&self, t: usize, train_steps: usize) -> Result<f64, Error> {
        self.validate(train_steps)?;
        if t >= train_steps {
            return Err(Error::StepOutOfRange);
        }
        Ok(self.beta_unchecked(t, train_steps))
    }

    /// β_t for a validated schedule and `t < train_steps`.
    fn beta_unchecked(&self, t: usize, train_steps: usize) -> f64 {
        match *self {
            Self::Linear { start, end } => linspace(start, end, t, train_steps),
            Self::ScaledLinear { start, end } => {
                let root = linspace(sqrt_f64(start), sqrt_f64(end), t, train_steps);
                root * root
            }
            Self::Cosine { max_beta } => {
                let total = train_steps as f64;
                let ratio =
                    cosine_alpha_bar((t + 1) as f64 / total) / cosine_alpha_bar(t as f64 / total);
                (1.0 - ratio).min(max_beta)
            }
            // Validated: the list has `train_steps` entries.
            Self::Custom(betas) => betas.get(t).copied().unwrap_or(f64::NAN),
        }
    }
}

/// numpy's `linspace(start, end, n)[t]`.
fn linspace(start: f64, end: f64, t: usize, n: usize) -> f64 {
    if n <= 1 {
        start
    } else if t + 1 == n {
        end
    } else {
        t as f64 * ((end - start) / (n - 1) as f64) + start
    }
}

/// The cosine schedule's continuous ᾱ(u) = cos²((u + s)/(1 + s) · π/2).
fn cosine_alpha_bar(u: f64) -> f64 {
    let c = libm::cos((u + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * core::f64::consts::FRAC_PI_2);
    c * c
}

/// Which n of the T training timesteps a sampler visits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing<'a> {
    /// DDIM / diffusers "leading": τ_k = k·⌊T/n⌋, k = 0..n (includes 0).
    Leading,
    /// diffusers "trailing": τ = round_half_even(T − k·T/n) − 1 for k = 0..n, in f64 (numpy's
    /// `round` is ties-to-even, as is `rint`; includes T − 1).
    Trailing,
    /// ADM "even" respacing: τ_k = round_half_even(k·(T − 1)/(n − 1)), k = 0..n, rounded
    /// exactly in integers (includes 0 and T − 1; n = 1 gives τ = 0 as in ADM). ADM
    /// accumulates the stride in floating point, which can only differ at exact .5 ties.
    Linspace,
    /// A caller's list of model timesteps in sampling order: strictly descending, each < T,
    /// exactly n entries.
    Custom(&'a [u32]),
}

impl Spacing<'_> {
    /// Checks that `steps` timesteps can be chosen out of `train_steps` this way.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `steps` is 0 or above `train_steps`, `train_steps`
    /// does not fit in f32 exactly (≥ 2²⁴), or a custom list is not strictly descending or holds
    /// a timestep ≥ `train_steps`; [`Error::LengthMismatch`] if a custom list does not hold
    /// exactly `steps` timesteps.
    pub fn validate(&self, train_steps: usize, steps: usize) -> Result<(), Error> {
        if steps == 0 {
            return Err(Error::InvalidParameter("steps must be at least 1"));
        }
        if steps > train_steps {
            return Err(Error::InvalidParameter("steps must not exceed train_steps"));
        }
        if train_steps > MAX_TRAIN_STEPS {
            return Err(Error::InvalidParameter("train_steps must be below 2^24"));
        }
        if let Self::Custom(list) = *self {
            if list.len() != steps {
                return Err(Error::LengthMismatch("custom timestep list vs steps"));
            }
            if list.iter().any(|&t| t as usize >= train_steps) {
                return Err(Error::InvalidParameter(
                    "custom timestep must be below train_steps",
                ));
            }
            if list.windows(2).any(|w| w.first() <= w.get(1)) {
                return Err(Error::InvalidParameter(
                    "custom timesteps must be strictly descending (no duplicates)",
                ));
            }
        }
        Ok(())
    }

    /// Fills `out` (length `steps`) with τ_i in ascending order: `out[0]` is the last reverse
    /// step's (smallest) model timestep, `out[steps − 1]` the first's.
    ///
    /// # Errors
    /// As [`Spacing::validate`], and [`Error::LengthMismatch`] if `out.len() != steps`.
    pub fn timesteps(
        &self,
        train_steps: usize,
        steps: usize,
        out: &mut [u32],
    ) -> Result<(), Error> {
        self.validate(train_steps, steps)?;
        if out.len() != steps {
            return Err(Error::LengthMismatch("timestep output vs steps"));
        }
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = self.timestep_unchecked(train_steps, steps, i);
        }
        Ok(())
    }

    /// τ_i (ascending index i < steps) of a validated spacing.
    fn timestep_unchecked(&self, train_steps: usize, steps: usize, i: usize) -> u32 {
        let (t_total, n) = (train_steps as u64, steps as u64);
        let i = i as u64;
        let tau = match *self {
            Self::Leading => i * (t_total / n),
            Self::Trailing => {
                let k = (n - 1 - i) as f64;
                let value = t_total as f64 - k * (t_total as f64 / n as f64);
                (libm::rint(value) as u64).saturating_sub(1)
            }
            Self::Linspace => {
                if n == 1 {
                    0
                } else {
                    round_half_even_ratio(i * (t_total - 1), n - 1)
                }
            }
            Self::Custom(list) => {
                // Validated: `list` holds `steps` descending entries.
                let k = (n - 1 - i) as usize;
                return list.get(k).copied().unwrap_or(0);
            }
        };
        tau as u32
    }
}

/// Largest T whose timesteps are all exact in f32 (the `ModelT` table).
const MAX_TRAIN_STEPS: usize = 1 << 24;

/// num/den rounded to nearest, ties to even, in exact integer arithmetic (den > 0).
fn round_half_even_ratio(num: u64, den: u64) -> u64 {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        core::cmp::Ordering::Greater => q + 1,
        core::cmp::Ordering::Equal => q + (q & 1),
        core::cmp::Ordering::Less => q,
    }
}

/// The f32 tables, table-major; every table has one entry per (respaced) step.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// τ_i, the model timestep given to the network (an integer stored exactly).
    ModelT = 0,
    /// β'_i.
    Beta,
    /// α'_i = 1 − β'_i.
    Alpha,
    /// ᾱ_{τ_i} (may be 0 or subnormal in f32).
    AlphaBar,
    /// 1 − ᾱ.
    OneMinusAlphaBar,
    /// √ᾱ.
    SqrtAlphaBar,
    /// √(1 − ᾱ).
    SqrtOneMinusAlphaBar,
    /// 1/√ᾱ.
    InvSqrtAlphaBar,
    /// √(1/ᾱ − 1).
    SqrtRecipAlphaBarMinusOne,
    /// 1/√α'.
    InvSqrtAlpha,
    /// β'/√(1 − ᾱ), the ε coefficient of the DDPM mean.
    EpsCoef,
    /// c1 = β'√ᾱ_prev/(1 − ᾱ).
    PosteriorC1,
    /// c2 = √α'(1 − ᾱ_prev)/(1 − ᾱ).
    PosteriorC2,
    /// β̃ = β'(1 − ᾱ_prev)/(1 − ᾱ).
    PosteriorVariance,
    /// √β̃ (fixed-small σ).
    SigmaSmall,
    /// √β' (fixed-large σ).
    SigmaLarge,
    /// √ᾱ_prev (ᾱ of the next reverse step's timestep; 1 at i = 0).
    SqrtAlphaBarPrev,
    /// 1 − ᾱ_prev (0 at i = 0).
    OneMinusAlphaBarPrev,
}

/// Number of tables.
pub const TABLE_COUNT: usize = 18;

impl Table {
    /// Every table, in storage order.
    pub const ALL: [Table; TABLE_COUNT] = [
        Table::ModelT,
        Table::Beta,
        Table::Alpha,
        Table::AlphaBar,
        Table::OneMinusAlphaBar,
        Table::SqrtAlphaBar,
        Table::SqrtOneMinusAlphaBar,
        Table::InvSqrtAlphaBar,
        Table::SqrtRecipAlphaBarMinusOne,
        Table::InvSqrtAlpha,
        Table::EpsCoef,
        Table::PosteriorC1,
        Table::PosteriorC2,
        Table::PosteriorVariance,
        Table::SigmaSmall,
        Table::SigmaLarge,
        Table::SqrtAlphaBarPrev,
        Table::OneMinusAlphaBarPrev,
    ];

    /// The table's name, as used in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Table::ModelT => "schedule table ModelT",
            Table::Beta => "schedule table Beta",
            Table::Alpha => "schedule table Alpha",
            Table::AlphaBar => "schedule table AlphaBar",
            Table::OneMinusAlphaBar => "schedule table OneMinusAlphaBar",
            Table::SqrtAlphaBar => "schedule table SqrtAlphaBar",
            Table::SqrtOneMinusAlphaBar => "schedule table SqrtOneMinusAlphaBar",
            Table::InvSqrtAlphaBar => "schedule table InvSqrtAlphaBar",
            Table::SqrtRecipAlphaBarMinusOne => "schedule table SqrtRecipAlphaBarMinusOne",
            Table::InvSqrtAlpha => "schedule table InvSqrtAlpha",
            Table::EpsCoef => "schedule table EpsCoef",
            Table::PosteriorC1 => "schedule table PosteriorC1",
            Table::PosteriorC2 => "schedule table PosteriorC2",
            Table::PosteriorVariance => "schedule table PosteriorVariance",
            Table::SigmaSmall => "schedule table SigmaSmall",
            Table::SigmaLarge => "schedule table SigmaLarge",
            Table::SqrtAlphaBarPrev => "schedule table SqrtAlphaBarPrev",
            Table::OneMinusAlphaBarPrev => "schedule table OneMinusAlphaBarPrev",
        }
    }
}

/// Length of the flat table buffer for `steps` steps (saturating: an absurd `steps` gives
/// `usize::MAX`, which no buffer matches, instead of an overflow).
pub const fn table_len(steps: usize) -> usize {
    TABLE_COUNT.saturating_mul(steps)
}

/// Fills `out` (length [`table_len`]`(steps)`) with the f32 tables, table-major:
/// `out[table · steps + i]`. Step index i = 0 is the LAST reverse step (smallest model t),
/// i = steps − 1 the first. All arithmetic is f64; see the module docs for the equations.
/// With [`Spacing::Linspace`] and `steps == train_steps`, τ_i = i.
///
/// # Errors
/// As [`BetaSchedule::validate`] and [`Spacing::validate`]; [`Error::LengthMismatch`] if
/// `out.len() != table_len(steps)`; [`Error::NonFinite`] (naming the table) if a coefficient
/// overflows f32, or one that must be positive (β, α, √(1−ᾱ), 1/√ᾱ, 1/√α) rounds to 0, or ᾱ underflows f64 (only for schedules far harsher than any in use).
pub fn compute_tables(
    beta: &BetaSchedule,
    train_steps: usize,
    spacing: &Spacing,
    steps: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    beta.validate(train_steps)?;
    spacing.validate(train_steps, steps)?;
    if out.len() != table_len(steps) {
        return Err(Error::LengthMismatch("schedule tables vs table_len(steps)"));
    }
    // Running state over the training steps: ᾱ_t, 1 − ᾱ_t, and the product of α since the
    // previously emitted timestep (p) with 1 − p, both accumulated without cancellation.
    let (mut alpha_bar, mut one_minus_alpha_bar) = (1.0f64, 0.0f64);
    let (mut alpha_run, mut one_minus_alpha_run) = (1.0f64, 0.0f64);
    let (mut alpha_bar_prev, mut one_minus_alpha_bar_prev) = (1.0f64, 0.0f64);
    let mut i = 0;
    let mut tau = spacing.timestep_unchecked(train_steps, steps, 0) as usize;
    for t in 0..train_steps {
        let b = beta.beta_unchecked(t, train_steps);
        one_minus_alpha_bar += b * alpha_bar;
        alpha_bar *= 1.0 - b;
        one_minus_alpha_run += b * alpha_run;
        alpha_run *= 1.0 - b;
        if t != tau {
            continue;
        }
        let step = StepF64 {
            model_t: tau as f64,
            beta: one_minus_alpha_run,
            alpha: alpha_run,
            alpha_bar,
            one_minus_alpha_bar,
            alpha_bar_prev,
            one_minus_alpha_bar_prev,
        };
        step.store(out, steps, i)?;
        alpha_bar_prev = alpha_bar;
        one_minus_alpha_bar_prev = one_minus_alpha_bar;
        alpha_run = 1.0;
        one_minus_alpha_run = 0.0;
        i += 1;
        if i == steps {
            break;
        }
        tau = spacing.timestep_unchecked(train_steps, steps, i) as usize;
    }
    Ok(())
}

/// The f64 quantities of one respaced step, from which every table entry is derived.
struct StepF64 {
    model_t: f64,
    beta: f64,
    alpha: f64,
    alpha_bar: f64,
    one_minus_alpha_bar: f64,
    alpha_bar_prev: f64,
    one_minus_alpha_bar_prev: f64,
}

impl StepF64 {
    /// The table entry `which` (f64).
    fn value(&self, which: Table) -> f64 {
        let posterior_variance =
            self.beta * self.one_minus_alpha_bar_prev / self.one_minus_alpha_bar;
        match which {
            Table::ModelT => self.model_t,
            Table::Beta => self.beta,
            Table::Alpha => self.alpha,
            Table::AlphaBar => self.alpha_bar,
            Table::OneMinusAlphaBar => self.one_minus_alpha_bar,
            Table::SqrtAlphaBar => sqrt_f64(self.alpha_bar),
            Table::SqrtOneMinusAlphaBar => sqrt_f64(self.one_minus_alpha_bar),
            Table::InvSqrtAlphaBar => 1.0 / sqrt_f64(self.alpha_bar),
            Table::SqrtRecipAlphaBarMinusOne => sqrt_f64(self.one_minus_alpha_bar / self.alpha_bar),
            Table::InvSqrtAlpha => 1.0 / sqrt_f64(self.alpha),
            Table::EpsCoef => self.beta / sqrt_f64(self.one_minus_alpha_bar),
            Table::PosteriorC1 => {
                self.beta * sqrt_f64(self.alpha_bar_prev) / self.one_minus_alpha_bar
            }
            Table::PosteriorC2 => {
                sqrt_f64(self.alpha) * self.one_minus_alpha_bar_prev / self.one_minus_alpha_bar
            }
            Table::PosteriorVariance => posterior_variance,
            Table::SigmaSmall => sqrt_f64(posterior_variance),
            Table::SigmaLarge => sqrt_f64(self.beta),
            Table::SqrtAlphaBarPrev => sqrt_f64(self.alpha_bar_prev),
            Table::OneMinusAlphaBarPrev => self.one_minus_alpha_bar_prev,
        }
    }

    /// Writes step `i` of every table, failing if an entry is not finite in f32, or not
    /// positive in a table [`Schedule::from_tables`] requires positive (a β far below f32's
    /// range rounds to 0: found by fuzzing, where such tables failed validation afterwards).
    fn store(&self, out: &mut [f32], steps: usize, i: usize) -> Result<(), Error> {
        for which in Table::ALL {
            let value = self.value(which) as f32;
            if !value.is_finite() || (must_be_positive(which) && value <= 0.0) {
                return Err(Error::NonFinite(which.name()));
            }
            let slot = out
                .get_mut(which as usize * steps + i)
                .ok_or(Error::BufferTooSmall("schedule tables"))?;
            *slot = value;
        }
        Ok(())
    }
}

/// The tables that divide or scale and so must be positive (checked by
/// [`Schedule::from_tables`] and, for its own output, by [`compute_tables`]).
fn must_be_positive(which: Table) -> bool {
    matches!(
        which,
        Table::Beta
            | Table::Alpha
            | Table::SqrtOneMinusAlphaBar
            | Table::InvSqrtAlphaBar
            | Table::InvSqrtAlpha
    )
}

/// Per-step coefficients, read from a [`Schedule`]'s tables (see [`Table`] for each field).
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct StepCoefs {
    pub model_t: u32,
    pub beta: f32,
    pub alpha: f32,
    pub alpha_bar: f32,
    pub one_minus_alpha_bar: f32,
    pub sqrt_alpha_bar: f32,
    pub sqrt_one_minus_alpha_bar: f32,
    pub inv_sqrt_alpha_bar: f32,
    pub sqrt_recip_alpha_bar_minus_one: f32,
    pub inv_sqrt_alpha: f32,
    pub eps_coef: f32,
    pub posterior_c1: f32,
    pub posterior_c2: f32,
    pub posterior_variance: f32,
    pub sigma_small: f32,
    pub sigma_large: f32,
    pub sqrt_alpha_bar_prev: f32,
    pub one_minus_alpha_bar_prev: f32,
}

/// A validated, borrowed view of the f32 tables of `steps` steps (as written by
/// [`compute_tables`] or read from a model file): all [`TABLE_COUNT`] tables, or a
/// [`TableSet`] of them stored back to back in table order.
///
/// A schedule without `ModelT` covers the full training schedule, τ_i = i (a model file's
/// tables always do); every other absent table reads as empty ([`Schedule::table`]) or NaN
/// ([`Schedule::coefs`]), and [`Schedule::require`] turns its absence into
/// [`Error::MissingTable`] for callers that read it.
#[derive(Clone, Copy, Debug)]
pub struct Schedule<'a> {
    steps: usize,
    tables: TableSet,
    data: &'a [f32],
}

impl<'a> Schedule<'a> {
    /// Wraps `data` (all tables, table-major, length [`table_len`]`(steps)`).
    ///
    /// # Errors
    /// As [`Schedule::from_table_subset`] with [`TableSet::ALL`].
    pub fn from_tables(data: &'a [f32], steps: usize) -> Result<Self, Error> {
        Self::from_table_subset(data, steps, TableSet::ALL)
    }

    /// Wraps `data`: the tables of `tables`, table-major in storage order, `steps` entries
    /// each (length `tables.len() · steps`).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] if `steps` is 0, `tables` is empty, `ModelT` is present
    /// and not integral, strictly increasing and below 2²⁴, or absent with `steps` ≥ 2²⁴;
    /// [`Error::LengthMismatch`] if the length is wrong; [`Error::NonFinite`] (naming the
    /// table) if an entry is NaN or infinite, or if a table that divides or scales (`Beta`,
    /// `Alpha`, `SqrtOneMinusAlphaBar`, `InvSqrtAlphaBar`, `InvSqrtAlpha`) is not positive.
    pub fn from_table_subset(
        data: &'a [f32],
        steps: usize,
        tables: TableSet,
    ) -> Result<Self, Error> {
        if steps == 0 {
            return Err(Error::InvalidParameter("schedule steps must be at least 1"));
        }
        if tables.is_empty() {
            return Err(Error::InvalidParameter(
                "schedule must hold at least one table",
            ));
        }
        if data.len() != tables.len().saturating_mul(steps) {
            return Err(Error::LengthMismatch(
                "schedule tables vs table count · steps",
            ));
        }
        let schedule = Self {
            steps,
            tables,
            data,
        };
        for which in Table::ALL {
            let table = schedule.table(which);
            if !table.iter().all(|v| v.is_finite()) {
                return Err(Error::NonFinite(which.name()));
            }
            if must_be_positive(which) && !table.iter().all(|&v| v > 0.0) {
                return Err(Error::NonFinite(which.name()));
            }
        }
        let model_t = schedule.table(Table::ModelT);
        let integral = model_t
            .iter()
            .all(|&t| t >= 0.0 && t < MAX_TRAIN_STEPS as f32 && libm::truncf(t) == t);
        let implicit_ok = tables.contains(Table::ModelT) || steps <= MAX_TRAIN_STEPS;
        if !integral || !implicit_ok || model_t.windows(2).any(|w| w.first() >= w.get(1)) {
            return Err(Error::InvalidParameter(
                "schedule ModelT must hold increasing integer timesteps below 2^24",
            ));
        }
        Ok(schedule)
    }

    /// Number of (respaced) steps.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Which tables the schedule holds.
    pub fn tables(&self) -> TableSet {
        self.tables
    }

    /// The whole flat buffer (table-major, the present tables only).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// One table, `steps` entries long; empty if the schedule does not hold it.
    pub fn table(&self, which: Table) -> &'a [f32] {
        if !self.tables.contains(which) {
            return &[];
        }
        let start = self.tables.rank(which) * self.steps;
        // The length was validated in `from_table_subset`, so the range is always present.
        self.data.get(start..start + self.steps).unwrap_or(&[])
    }

    /// Checks that every table of `needed` is present.
    ///
    /// # Errors
    /// [`Error::MissingTable`] naming the first absent one.
    pub fn require(&self, needed: TableSet) -> Result<(), Error> {
        self.tables.require(needed)
    }

    /// The coefficients of step `i` (0 = last reverse step). A field whose table is absent
    /// is NaN (callers check [`Schedule::require`] first); without `ModelT`, τ_i = i.
    ///
    /// # Errors
    /// [`Error::StepOutOfRange`] if `i ≥ steps`.
    pub fn coefs(&self, i: usize) -> Result<StepCoefs, Error> {
        if i >= self.steps {
            return Err(Error::StepOutOfRange);
        }
        let at = |which: Table| self.table(which).get(i).copied().unwrap_or(f32::NAN);
        let model_t = if self.tables.contains(Table::ModelT) {
            at(Table::ModelT) as u32
        } else {
            i as u32
        };
        Ok(StepCoefs {
            model_t,
            beta: at(Table::Beta),
            alpha: at(Table::Alpha),
            alpha_bar: at(Table::AlphaBar),
            one_minus_alpha_bar: at(Table::OneMinusAlphaBar),
            sqrt_alpha_bar: at(Table::SqrtAlphaBar),
            sqrt_one_minus_alpha_bar: at(Table::SqrtOneMinusAlphaBar),
            inv_sqrt_alpha_bar: at(Table::InvSqrtAlphaBar),
            sqrt_recip_alpha_bar_minus_one: at(Table::SqrtRecipAlphaBarMinusOne),
            inv_sqrt_alpha: at(Table::InvSqrtAlpha),
            eps_coef: at(Table::EpsCoef),
            posterior_c1: at(Table::PosteriorC1),
            posterior_c2: at(Table::PosteriorC2),
            posterior_variance: at(Table::PosteriorVariance),
            sigma_small: at(Table::SigmaSmall),
            sigma_large: at(Table::SigmaLarge),
            sqrt_alpha_bar_prev: at(Table::SqrtAlphaBarPrev),
            one_minus_alpha_bar_prev: at(Table::OneMinusAlphaBarPrev),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Tables for `(beta, T, spacing, n)`, panicking on error.
    fn tables(
        beta: &BetaSchedule,
        train_steps: usize,
        spacing: &Spacing,
        steps: usize,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; table_len(steps)];
        compute_tables(beta, train_steps, spacing, steps, &mut out).unwrap();
        out
    }

    fn entry(data: &[f32], steps: usize, which: Table, i: usize) -> f64 {
        data[which as usize * steps + i] as f64
    }

    /// Independent f64 derivation: β list → direct cumulative product ᾱ → respaced quantities
    /// by the textbook formulas (subtractions included), one row of 18 values per step.
    fn reference(betas: &[f64], taus: &[usize]) -> Vec<[f64; TABLE_COUNT]> {
        let mut alpha_bar_full = Vec::with_capacity(betas.len());
        let mut product = 1.0f64;
        for b in betas {
            product *= 1.0 - b;
            alpha_bar_full.push(product);
        }
        let mut rows = Vec::new();
        for (i, &tau) in taus.iter().enumerate() {
            let ab = alpha_bar_full[tau];
            let ab_prev = if i == 0 {
                1.0
            } else {
                alpha_bar_full[taus[i - 1]]
            };
            let alpha = ab / ab_prev;
            let beta = 1.0 - alpha;
            let (omab, omab_prev) = (1.0 - ab, 1.0 - ab_prev);
            let var = beta * omab_prev / omab;
            rows.push([
                tau as f64,
                beta,
                alpha,
                ab,
                omab,
                ab.sqrt(),
                omab.sqrt(),
                ab.powf(-0.5),
                (1.0 / ab - 1.0).sqrt(),
                alpha.powf(-0.5),
                beta / omab.sqrt(),
                beta * ab_prev.sqrt() / omab,
                alpha.sqrt() * omab_prev / omab,
                var,
                var.sqrt(),
                beta.sqrt(),
                ab_prev.sqrt(),
                omab_prev,
            ]);
        }
        rows
    }

    fn assert_matches_reference(
        data: &[f32],
        steps: usize,
        betas: &[f64],
        taus: &[usize],
        what: &str,
    ) {
        let rows = reference(betas, taus);
        for (i, row) in rows.iter().enumerate() {
            for which in Table::ALL {
                let (got, want) = (entry(data, steps, which, i), row[which as usize]);
                // f32 rounding is 6e-8 relative; f32::MIN_POSITIVE covers ᾱ below f32's range.
                let tol = 1e-6 * want.abs() + f32::MIN_POSITIVE as f64;
                assert!(
                    (got - want).abs() <= tol,
                    "{what}: step {i} (t = {}) {which:?}: {got:e} vs f64 {want:e}",
                    taus[i]
                );
            }
        }
    }

    fn linear_betas(start: f64, end: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|t| start + (end - start) * t as f64 / (n - 1) as f64)
            .collect()
    }

    fn scaled_linear_betas(start: f64, end: f64, n: usize) -> Vec<f64> {
        linear_betas(start.sqrt(), end.sqrt(), n)
            .iter()
            .map(|r| r * r)
            .collect()
    }

    fn cosine_betas(n: usize, cap: f64) -> Vec<f64> {
        let f = |u: f64| {
            ((u + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                .cos()
                .powi(2)
        };
        (0..n)
            .map(|i| (1.0 - f((i + 1) as f64 / n as f64) / f(i as f64 / n as f64)).min(cap))
            .collect()
    }

    fn taus(spacing: &Spacing, train_steps: usize, steps: usize) -> Vec<usize> {
        let mut out = vec![0u32; steps];
        spacing.timesteps(train_steps, steps, &mut out).unwrap();
        out.iter().map(|&t| t as usize).collect()
    }

    #[test]
    fn paper_schedule_matches_papers_md_table() {
        let data = tables(&BetaSchedule::PAPER, 1000, &Spacing::Linspace, 1000);
        let n = 1000;
        // papers.md §1.2: (t, ᾱ_t, √(1 − ᾱ_t)).
        const TEST_VECTORS: &[(usize, f64, f64)] = &[
            (0, 0.999, 0.031623),
            (9, 0.981195, 0.137130),
            (49, 0.744460, 0.505509),
            (99, 0.334986, 0.815484),
            (199, 0.0146719, 0.992637),
        ];
        for &(t, alpha_bar, sqrt_one_minus) in TEST_VECTORS {
            let got = entry(&data, n, Table::AlphaBar, t);
            assert!(
                (got - alpha_bar).abs() <= 1e-6 + 1e-5 * alpha_bar,
                "ᾱ_{t} = {got}"
            );
            let got = entry(&data, n, Table::SqrtOneMinusAlphaBar, t);
            assert!((got - sqrt_one_minus).abs() <= 1e-6, "√(1−ᾱ_{t}) = {got}");
        }
        // The brief's ±1e-5 figures.
        assert!((entry(&data, n, Table::AlphaBar, 9) - 0.98120).abs() <= 1e-5);
        assert!((entry(&data, n, Table::AlphaBar, 99) - 0.33499).abs() <= 1e-5);
        // ᾱ_999 = 1.2895e−47 underflows f32; recover it from 1/√ᾱ ≈ 2.78e23, which must fit.
        let inv = entry(&data, n, Table::InvSqrtAlphaBar, 999);
        assert!((inv - 2.78e23).abs() <= 0.01e23, "1/√ᾱ_999 = {inv:e}");
        let alpha_bar_999 = 1.0 / (inv * inv);
        assert!(
            (alpha_bar_999 - 1.2895e-47).abs() <= 1e-4 * 1.2895e-47,
            "{alpha_bar_999:e}"
        );
        let stored = data[Table::AlphaBar as usize * n + 999];
        assert!(
            stored == 0.0 || stored.is_subnormal(),
            "ᾱ_999 stored as {stored:e}"
        );
        assert_eq!(entry(&data, n, Table::SqrtOneMinusAlphaBar, 999), 1.0);
        assert!(
            data.iter().all(|v| v.is_finite()),
            "every paper table entry finite"
        );
        // papers.md §1.3.1: ᾱ subnormal from t = 902 and 0 from t = 981 in f32.
        let alpha_bar = &data[Table::AlphaBar as usize * n..][..n];
        assert!(alpha_bar[901].is_normal() && alpha_bar[902].is_subnormal());
        assert!(alpha_bar[980] > 0.0 && alpha_bar[981] == 0.0);
        // Posterior coefficients at t = 1 and fixed-large σ at t = 0, 1, 2, 9.
        assert!((entry(&data, n, Table::PosteriorC1, 1) - 0.545314).abs() <= 1e-6);
        assert!((entry(&data, n, Table::PosteriorC2, 1) - 0.454686).abs() <= 1e-6);
        for (t, sigma) in [(0, 0.031623), (1, 0.034629), (2, 0.037395), (9, 0.052847)] {
            let got = entry(&data, n, Table::SigmaLarge, t);
            assert!((got - sigma).abs() <= 1e-6, "σ_{t} = {got}");
        }
        // At t = 0: c1 = 1, c2 = 0, β̃ = 0 (so the output is the last x̂0).
        assert_eq!(entry(&data, n, Table::PosteriorC1, 0), 1.0);
        assert_eq!(entry(&data, n, Table::PosteriorC2, 0), 0.0);
        assert_eq!(entry(&data, n, Table::PosteriorVariance, 0), 0.0);
        // ᾱ < 0.5 from t = 78, < 1e−2 from t = 209, < 1e−4 from t = 296 (papers.md §1.2).
        for (t, level) in [(78, 0.5), (209, 1e-2), (296, 1e-4)] {
            assert!(
                alpha_bar[t - 1] as f64 >= level && (alpha_bar[t] as f64) < level,
                "t = {t}"
            );
        }
        assert_matches_reference(
            &data,
            n,
            &linear_betas(1e-3, 0.2, 1000),
            &taus(&Spacing::Linspace, 1000, n),
            "paper",
        );
    }

    #[test]
    fn unrespaced_beta_is_stored_exactly() {
        let betas = linear_betas(1e-3, 0.2, 1000);
        let data = tables(&BetaSchedule::PAPER, 1000, &Spacing::Linspace, 1000);
        for (t, b) in betas.iter().enumerate() {
            assert_eq!(data[Table::ModelT as usize * 1000 + t], t as f32);
            assert!(
                (entry(&data, 1000, Table::Beta, t) - b).abs() <= 1e-7 * b,
                "β_{t}"
            );
            assert_eq!(BetaSchedule::PAPER.beta(t, 1000).unwrap() as f32, *b as f32);
        }
    }

    #[test]
    fn cosine_schedule_matches_adm() {
        let data = tables(&BetaSchedule::COSINE, 1000, &Spacing::Linspace, 1000);
        // papers.md §2.2: β_0 = 4.13e−5, ᾱ_999 = 2.43e−9.
        let beta_0 = entry(&data, 1000, Table::Beta, 0);
        assert!((beta_0 - 4.13e-5).abs() <= 0.005e-5, "β_0 = {beta_0:e}");
        let alpha_bar_999 = entry(&data, 1000, Table::AlphaBar, 999);
        assert!(
            (alpha_bar_999 - 2.43e-9).abs() <= 0.005e-9,
            "ᾱ_999 = {alpha_bar_999:e}"
        );
        let betas = cosine_betas(1000, 0.999);
        for (n, spacing) in [
            (1000, Spacing::Linspace),
            (20, Spacing::Linspace),
            (50, Spacing::Leading),
            (100, Spacing::Trailing),
        ] {
            let data = tables(&BetaSchedule::COSINE, 1000, &spacing, n);
            assert_matches_reference(&data, n, &betas, &taus(&spacing, 1000, n), "cosine");
        }
        // papers.md §2.3: 20 even steps, the first respaced β' = 1 − 3.6e−7.
        let data = tables(&BetaSchedule::COSINE, 1000, &Spacing::Linspace, 20);
        let alpha_first = entry(&data, 20, Table::Alpha, 19);
        assert!(
            (alpha_first - 3.6e-7).abs() <= 0.1e-7,
            "α'_19 = {alpha_first:e}"
        );
    }

    #[test]
    fn linear_scaled_linear_and_custom_match_f64_reference() {
        let custom: Vec<f64> = (0..200)
            .map(|t| 0.01 + 0.001 * (t % 7) as f64 + 1e-4 * t as f64)
            .collect();
        let cases: Vec<(BetaSchedule, Vec<f64>, usize)> = vec![
            (BetaSchedule::DDPM, linear_betas(1e-4, 0.02, 1000), 1000),
            (
                BetaSchedule::ScaledLinear {
                    start: 0.00085,
                    end: 0.012,
                },
                scaled_linear_betas(0.00085, 0.012, 1000),
                1000,
            ),
            (BetaSchedule::Custom(&custom), custom.clone(), 200),
        ];
        for (beta, betas, t_total) in &cases {
            for (n, spacing) in [
                (*t_total, Spacing::Linspace),
                (10, Spacing::Leading),
                (50, Spacing::Trailing),
                (33, Spacing::Linspace),
            ] {
                let data = tables(beta, *t_total, &spacing, n);
                assert_matches_reference(&data, n, betas, &taus(&spacing, *t_total, n), "schedule");
            }
        }
        // A custom list equal to the paper's linspace gives the same tables.
        let paper = linear_betas(1e-3, 0.2, 1000);
        let a = tables(&BetaSchedule::Custom(&paper), 1000, &Spacing::Linspace, 50);
        let b = tables(&BetaSchedule::PAPER, 1000, &Spacing::Linspace, 50);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-6 * y.abs(), "{x} vs {y}");
        }
    }

    #[test]
    fn posterior_identities_hold_on_every_step() {
        let cases: &[(BetaSchedule, usize, Spacing, usize)] = &[
            (BetaSchedule::PAPER, 1000, Spacing::Linspace, 1000),
            (BetaSchedule::DDPM, 1000, Spacing::Linspace, 1000),
            (BetaSchedule::COSINE, 1000, Spacing::Linspace, 20),
            (BetaSchedule::COSINE, 1000, Spacing::Trailing, 100),
            (BetaSchedule::PAPER, 1000, Spacing::Leading, 50),
        ];
        for (beta, t_total, spacing, n) in cases {
            let data = tables(beta, *t_total, spacing, *n);
            let at = |which, i| entry(&data, *n, which, i);
            for i in 0..*n {
                // c1 + c2·√ᾱ_t = √ᾱ_{t−1}
                let (c1, c2) = (at(Table::PosteriorC1, i), at(Table::PosteriorC2, i));
                let lhs = c1 + c2 * at(Table::SqrtAlphaBar, i);
                let rhs = at(Table::SqrtAlphaBarPrev, i);
                assert!(
                    (lhs - rhs).abs() <= 1e-6 * (c1.abs() + rhs.abs()),
                    "{beta:?} step {i}: {lhs:e} vs {rhs:e}"
                );
                // c2²(1 − ᾱ_t) + β̃_t = 1 − ᾱ_{t−1}
                let lhs =
                    c2 * c2 * at(Table::OneMinusAlphaBar, i) + at(Table::PosteriorVariance, i);
                let rhs = at(Table::OneMinusAlphaBarPrev, i);
                assert!(
                    (lhs - rhs).abs() <= 1e-6 * rhs.abs() + 1e-12,
                    "{beta:?} step {i}: {lhs:e} vs {rhs:e}"
                );
                // σ tables are the square roots of the variances.
                let small = at(Table::SigmaSmall, i);
                assert!(
                    (small * small - at(Table::PosteriorVariance, i)).abs()
                        <= 1e-6 * small * small + 1e-12
                );
                let large = at(Table::SigmaLarge, i);
                assert!((large * large - at(Table::Beta, i)).abs() <= 1e-6 * large * large);
            }
        }
    }

    #[test]
    fn spacing_test_vectors() {
        // (spacing, T, n, ascending τ or its first and last entries checked below).
        const TEST_VECTORS: &[(Spacing, usize, usize, &[u32])] = &[
            (
                Spacing::Leading,
                1000,
                10,
                &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900],
            ),
            (
                Spacing::Trailing,
                1000,
                10,
                &[99, 199, 299, 399, 499, 599, 699, 799, 899, 999],
            ),
            (
                Spacing::Linspace,
                1000,
                10,
                &[0, 111, 222, 333, 444, 555, 666, 777, 888, 999],
            ),
            (Spacing::Leading, 1000, 3, &[0, 333, 666]),
            (Spacing::Trailing, 1000, 3, &[332, 666, 999]),
            // Ties round to even: 499.5 → 500, 249.75 → 250, 749.25 → 749.
            (Spacing::Linspace, 1000, 3, &[0, 500, 999]),
            (Spacing::Linspace, 1000, 5, &[0, 250, 500, 749, 999]),
            (Spacing::Linspace, 1000, 1, &[0]),
            (Spacing::Trailing, 1000, 1, &[999]),
            (Spacing::Custom(&[999, 500, 3]), 1000, 3, &[3, 500, 999]),
        ];
        for (spacing, t_total, n, want) in TEST_VECTORS {
            assert_eq!(
                taus(spacing, *t_total, *n),
                want.iter().map(|&t| t as usize).collect::<Vec<_>>(),
                "{spacing:?} n = {n}"
            );
        }
        for n in [10usize, 50, 1000] {
            let leading = taus(&Spacing::Leading, 1000, n);
            let trailing = taus(&Spacing::Trailing, 1000, n);
            let linspace = taus(&Spacing::Linspace, 1000, n);
            for k in 0..n {
                assert_eq!(leading[k], k * (1000 / n));
                assert_eq!(
                    trailing[k],
                    999 - (n - 1 - k) * (1000 / n),
                    "trailing n = {n}"
                );
                // No ties possible for odd n − 1 = 9, 49, 999: round half away is the same.
                assert_eq!(
                    linspace[k] as f64,
                    (k as f64 * 999.0 / (n - 1) as f64).round(),
                    "linspace n = {n}"
                );
            }
            if n == 1000 {
                assert_eq!(leading, (0..1000).collect::<Vec<_>>());
                assert_eq!(trailing, leading);
                assert_eq!(linspace, leading);
            }
        }
    }

    #[test]
    fn invalid_spacings_and_schedules_are_rejected() {
        let mut out = [0u32; 3];
        let cases: &[(Spacing, usize, usize, Error)] = &[
            (
                Spacing::Custom(&[1, 5, 9]),
                1000,
                3,
                Error::InvalidParameter(
                    "custom timesteps must be strictly descending (no duplicates)",
                ),
            ),
            (
                Spacing::Custom(&[9, 5, 5]),
                1000,
                3,
                Error::InvalidParameter(
                    "custom timesteps must be strictly descending (no duplicates)",
                ),
            ),
            (
                Spacing::Custom(&[1000, 5, 1]),
                1000,
                3,
                Error::InvalidParameter("custom timestep must be below train_steps"),
            ),
            (
                Spacing::Custom(&[9, 5]),
                1000,
                3,
                Error::LengthMismatch("custom timestep list vs steps"),
            ),
            (
                Spacing::Linspace,
                2,
                3,
                Error::InvalidParameter("steps must not exceed train_steps"),
            ),
            (
                Spacing::Leading,
                1000,
                0,
                Error::InvalidParameter("steps must be at least 1"),
            ),
        ];
        for (spacing, t_total, n, err) in cases {
            assert_eq!(spacing.validate(*t_total, *n), Err(*err), "{spacing:?}");
            let mut tables_out = vec![0.0f32; table_len(*n)];
            assert_eq!(
                compute_tables(&BetaSchedule::PAPER, *t_total, spacing, *n, &mut tables_out),
                Err(*err)
            );
        }
        assert!(matches!(
            Spacing::Leading.timesteps(1000, 4, &mut out),
            Err(Error::LengthMismatch(_))
        ));
        let bad_betas: &[(BetaSchedule, usize)] = &[
            (
                BetaSchedule::Linear {
                    start: 0.0,
                    end: 0.2,
                },
                10,
            ),
            (
                BetaSchedule::Linear {
                    start: 1e-3,
                    end: 1.0,
                },
                10,
            ),
            (
                BetaSchedule::ScaledLinear {
                    start: f64::NAN,
                    end: 0.2,
                },
                10,
            ),
            (BetaSchedule::Cosine { max_beta: 1.0 }, 10),
            (BetaSchedule::Custom(&[0.1, 0.0, 0.1]), 3),
            (BetaSchedule::Custom(&[0.1, f64::INFINITY, 0.1]), 3),
            (BetaSchedule::PAPER, 0),
        ];
        for (beta, t_total) in bad_betas {
            assert!(
                matches!(beta.validate(*t_total), Err(Error::InvalidParameter(_))),
                "{beta:?}"
            );
        }
        assert!(matches!(
            BetaSchedule::Custom(&[0.1, 0.2]).validate(3),
            Err(Error::LengthMismatch(_))
        ));
        assert_eq!(
            BetaSchedule::PAPER.beta(1000, 1000),
            Err(Error::StepOutOfRange)
        );
        let mut short = vec![0.0f32; table_len(10) - 1];
        assert!(matches!(
            compute_tables(
                &BetaSchedule::PAPER,
                1000,
                &Spacing::Linspace,
                10,
                &mut short
            ),
            Err(Error::LengthMismatch(_))
        ));
        // A schedule so harsh that 1/√ᾱ overflows f32 is refused, naming the table.
        let harsh = vec![0.9f64; 100];
        let mut out = vec![0.0f32; table_len(100)];
        assert!(matches!(
            compute_tables(
                &BetaSchedule::Custom(&harsh),
                100,
                &Spacing::Linspace,
                100,
                &mut out
            ),
            Err(Error::NonFinite(_))
        ));
    }

    #[test]
    fn schedule_view_validates_and_reads_coefs() {
        let n = 50;
        let data = tables(&BetaSchedule::COSINE, 1000, &Spacing::Linspace, n);
        let schedule = Schedule::from_tables(&data, n).unwrap();
        assert_eq!(schedule.steps(), n);
        for which in Table::ALL {
            assert_eq!(schedule.table(which), &data[which as usize * n..][..n]);
        }
        let c = schedule.coefs(7).unwrap();
        let fields = [
            (Table::Beta, c.beta),
            (Table::Alpha, c.alpha),
            (Table::AlphaBar, c.alpha_bar),
            (Table::OneMinusAlphaBar, c.one_minus_alpha_bar),
            (Table::SqrtAlphaBar, c.sqrt_alpha_bar),
            (Table::SqrtOneMinusAlphaBar, c.sqrt_one_minus_alpha_bar),
            (Table::InvSqrtAlphaBar, c.inv_sqrt_alpha_bar),
            (
                Table::SqrtRecipAlphaBarMinusOne,
                c.sqrt_recip_alpha_bar_minus_one,
            ),
            (Table::InvSqrtAlpha, c.inv_sqrt_alpha),
            (Table::EpsCoef, c.eps_coef),
            (Table::PosteriorC1, c.posterior_c1),
            (Table::PosteriorC2, c.posterior_c2),
            (Table::PosteriorVariance, c.posterior_variance),
            (Table::SigmaSmall, c.sigma_small),
            (Table::SigmaLarge, c.sigma_large),
            (Table::SqrtAlphaBarPrev, c.sqrt_alpha_bar_prev),
            (Table::OneMinusAlphaBarPrev, c.one_minus_alpha_bar_prev),
        ];
        for (which, value) in fields {
            assert_eq!(value, schedule.table(which)[7], "{which:?}");
        }
        assert_eq!(c.model_t, schedule.table(Table::ModelT)[7] as u32);
        assert_eq!(schedule.coefs(n), Err(Error::StepOutOfRange));
        assert!(matches!(
            Schedule::from_tables(&data[1..], n),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            Schedule::from_tables(&[], 0),
            Err(Error::InvalidParameter(_))
        ));
        let mut bad = data.clone();
        bad[Table::EpsCoef as usize * n + 3] = f32::NAN;
        assert_eq!(
            Schedule::from_tables(&bad, n).unwrap_err(),
            Error::NonFinite(Table::EpsCoef.name())
        );
        let mut bad = data.clone();
        bad[Table::SqrtOneMinusAlphaBar as usize * n + 3] = 0.0;
        assert!(matches!(
            Schedule::from_tables(&bad, n),
            Err(Error::NonFinite(_))
        ));
        for (i, value) in [(5, 4.5f32), (5, 0.0), (0, -1.0)] {
            let mut bad = data.clone();
            bad[Table::ModelT as usize * n + i] = value;
            assert!(
                matches!(
                    Schedule::from_tables(&bad, n),
                    Err(Error::InvalidParameter(_))
                ),
                "ModelT[{i}] = {value}"
            );
        }
    }

    #[test]
    fn table_subset_view() {
        let n = 30;
        let data = tables(&BetaSchedule::PAPER, 1000, &Spacing::Leading, n);
        let full = Schedule::from_tables(&data, n).unwrap();
        let set = TableSet::of(&[Table::ModelT, Table::AlphaBar, Table::SigmaLarge]);
        let packed: Vec<f32> = [Table::ModelT, Table::AlphaBar, Table::SigmaLarge]
            .iter()
            .flat_map(|&t| full.table(t).iter().copied())
            .collect();
        let sub = Schedule::from_table_subset(&packed, n, set).unwrap();
        assert_eq!(
            (sub.steps(), sub.tables(), sub.data()),
            (n, set, &packed[..])
        );
        for which in Table::ALL {
            let want: &[f32] = if set.contains(which) {
                full.table(which)
            } else {
                &[]
            };
            assert_eq!(sub.table(which), want, "{which:?}");
        }
        let (c, want) = (sub.coefs(11).unwrap(), full.coefs(11).unwrap());
        assert_eq!(
            (c.model_t, c.alpha_bar, c.sigma_large),
            (want.model_t, want.alpha_bar, want.sigma_large)
        );
        assert!(c.beta.is_nan() && c.eps_coef.is_nan() && c.one_minus_alpha_bar_prev.is_nan());
        assert_eq!(sub.require(TableSet::of(&[Table::AlphaBar])), Ok(()));
        assert_eq!(
            sub.require(TableSet::of(&[Table::SigmaSmall, Table::AlphaBar])),
            Err(Error::MissingTable(Table::SigmaSmall.name()))
        );
        // Without ModelT the schedule is the full training one: τ_i = i.
        let no_t = TableSet::of(&[Table::SigmaLarge]);
        let sub = Schedule::from_table_subset(full.table(Table::SigmaLarge), n, no_t).unwrap();
        assert_eq!(sub.coefs(11).unwrap().model_t, 11);
        assert_eq!(sub.coefs(n), Err(Error::StepOutOfRange));
        // Validation covers the present tables only, naming the bad one.
        assert!(matches!(
            Schedule::from_table_subset(&packed[1..], n, set),
            Err(Error::LengthMismatch(_))
        ));
        assert!(matches!(
            Schedule::from_table_subset(&[], n, TableSet::EMPTY),
            Err(Error::InvalidParameter(_))
        ));
        let mut bad = packed.clone();
        bad[2 * n + 4] = f32::INFINITY;
        assert_eq!(
            Schedule::from_table_subset(&bad, n, set).unwrap_err(),
            Error::NonFinite(Table::SigmaLarge.name())
        );
        let mut bad = packed.clone();
        bad[3] = bad[2];
        assert!(matches!(
            Schedule::from_table_subset(&bad, n, set),
            Err(Error::InvalidParameter(_))
        ));
    }
}
