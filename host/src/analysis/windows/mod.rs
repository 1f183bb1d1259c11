//! Critical windows (Li & Chen 2024, arXiv 2403.01633; papers.md §3): closed-form P_stay and
//! window bounds ([`closed_form`]), the noising–denoising experiment with the exact score
//! ([`experiment`]) and the last-switch table linking windows to the Hal window ([`last_switch`]).

pub mod closed_form;
pub mod experiment;
pub mod last_switch;
