//! `host_inputs`: the host's readers on arbitrary bytes: mixture specs (TOML and JSON), CSV
//! and `.npy`, under both non-finite policies.
//!
//! Properties: errors, never panics; what parses is consistent (a CSV/NPY matrix has
//! rows·cols values and, under `Reject`, only finite ones; a spec gives a mixture whose
//! sizes agree and which generates a small dataset); encoding what was read and reading
//! it again gives the same matrix.

use mirage_host::data::{Dataset, Mixture};
use mirage_host::io::csv::{encode_csv, parse_csv};
use mirage_host::io::matrix::NonFinite;
use mirage_host::io::npy::{encode_npy, parse_npy};

/// The harness: the first byte picks the reader and the policy.
pub fn run(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let policy = if sel & 0x80 == 0 {
        NonFinite::Reject
    } else {
        NonFinite::Allow
    };
    match sel % 4 {
        0 | 1 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(m) = Mixture::from_spec_str(text, sel % 4 == 0, "fuzz") {
                check_mixture(&m);
            }
        }
        2 => {
            let Ok(text) = std::str::from_utf8(body) else {
                return;
            };
            if let Ok(csv) = parse_csv(text, policy) {
                let m = &csv.matrix;
                assert_eq!(m.data().len(), m.rows() * m.cols());
                if policy == NonFinite::Reject {
                    assert!(m.data().iter().all(|v| v.is_finite()));
                }
                let cols: Vec<&str> = csv.columns.iter().map(String::as_str).collect();
                if let Ok(text) = encode_csv(&cols, m) {
                    let again = parse_csv(&text, NonFinite::Allow).expect("encoded CSV parses");
                    assert_eq!(again.matrix.rows(), m.rows());
                    assert_eq!(again.matrix.cols(), m.cols());
                    for (a, b) in again.matrix.data().iter().zip(m.data()) {
                        assert!(
                            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                            "{a} vs {b}"
                        );
                    }
                }
            }
        }
        _ => {
            if let Ok(npy) = parse_npy(body, policy) {
                let m = &npy.matrix;
                assert_eq!(m.data().len(), m.rows() * m.cols());
                if policy == NonFinite::Reject {
                    assert!(m.data().iter().all(|v| v.is_finite()));
                }
                let again =
                    parse_npy(&encode_npy(m), NonFinite::Allow).expect("encoded NPY parses");
                assert_eq!(again.matrix.rows(), m.rows());
                for (a, b) in again.matrix.data().iter().zip(m.data()) {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
            }
        }
    }
}

fn check_mixture(m: &Mixture) {
    let (k, d) = (m.components(), m.dim());
    assert!(k >= 1 && d >= 1);
    assert_eq!(m.means().len(), k * d);
    assert_eq!(m.stds().len(), k * d);
    assert_eq!(m.weights().len(), k);
    assert!(
        m.means()
            .iter()
            .chain(m.stds())
            .chain(m.weights())
            .all(|v| v.is_finite())
    );
    let ds = Dataset::generate(m.clone(), 3, 1);
    assert_eq!(ds.points().len(), 3 * d);
}
