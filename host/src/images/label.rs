//! The Simple Shapes hallucination label (papers.md §7 D3).
//!
//! 1. Binarise: on iff value ≥ 0 on the [−1, 1] scale (≥ 128 of 255, up to rounding).
//! 2. Split into the three panel strips, x ∈ [0,21), [21,42), [42,63) at 64×64.
//! 3. Find 8-connected components per strip, ignoring any under 16 px.
//! 4. Hallucination iff any strip has ≥ 2 components.
//!
//! *Empty* images (no counted component) and *malformed* components (area outside
//! 48–88 px) are reported separately. At 32×32 (the 2×2-mean downscale of
//! [`super::shapes::ShapesSet::to_unit`]) the geometry scales: strips [0,11), [11,21),
//! [21,32) (a triangle reaches original x = 20 → 10; a square starts at x ≥ 22 → 11; a
//! pentagon at x ≥ 42 → 21), components under 4 px are ignored, and the well-formed range
//! is 12–30 px: a half-covered 2×2 block is exactly 0 and counts as on, so a square covers
//! 16, 20 or 25 px and the other shapes 16–30 (the tests check every training raster).

use anyhow::{Result, ensure};

/// Strip layout and size thresholds of the labeller at one resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StripGeometry {
    /// Image side (pixels).
    pub side: usize,
    /// Half-open x ranges of the three strips.
    pub strips: [(usize, usize); 3],
    /// Components with fewer pixels are ignored.
    pub min_component: usize,
    /// Counted components outside this inclusive area range are malformed.
    pub well_formed: (usize, usize),
}

impl StripGeometry {
    /// The full-resolution (64×64) geometry of D3.
    pub const FULL: Self = Self {
        side: 64,
        strips: [(0, 21), (21, 42), (42, 63)],
        min_component: 16,
        well_formed: (48, 88),
    };
    /// The 2×-downscaled (32×32) geometry.
    pub const HALF: Self = Self {
        side: 32,
        strips: [(0, 11), (11, 21), (21, 32)],
        min_component: 4,
        well_formed: (12, 30),
    };

    /// The geometry for images of side `side` (64 or 32).
    ///
    /// # Errors
    /// Any other side.
    pub fn for_side(side: usize) -> Result<Self> {
        match side {
            64 => Ok(Self::FULL),
            32 => Ok(Self::HALF),
            _ => anyhow::bail!("shapes labeller: image side must be 64 or 32, not {side}"),
        }
    }
}

/// The D3 label of one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShapesLabel {
    /// Counted components (≥ the minimum size) per strip.
    pub components: [usize; 3],
    /// Counted components outside the well-formed area range.
    pub malformed: usize,
    /// No counted component anywhere.
    pub empty: bool,
    /// Some strip holds ≥ 2 counted components.
    pub hallucinated: bool,
}

/// Labels one image (`side²` values on the [−1, 1] scale, row-major).
///
/// # Errors
/// If the image length is not `side²` of the geometry.
pub fn label_image(image: &[f32], geometry: &StripGeometry) -> Result<ShapesLabel> {
    let side = geometry.side;
    ensure!(
        image.len() == side * side,
        "shapes labeller: image has {} values, expected {side}×{side}",
        image.len()
    );
    let mut label = ShapesLabel::default();
    let mut seen = vec![false; side * side];
    let mut stack = Vec::new();
    for (strip, &(x0, x1)) in geometry.strips.iter().enumerate() {
        let on = |x: usize, y: usize| image[y * side + x] >= 0.0;
        for y in 0..side {
            for x in x0..x1 {
                if seen[y * side + x] || !on(x, y) {
                    continue;
                }
                seen[y * side + x] = true;
                stack.push((x, y));
                let mut area = 0usize;
                while let Some((cx, cy)) = stack.pop() {
                    area += 1;
                    for ny in cy.saturating_sub(1)..=(cy + 1).min(side - 1) {
                        for nx in cx.saturating_sub(1).max(x0)..=(cx + 1).min(x1 - 1) {
                            if !seen[ny * side + nx] && on(nx, ny) {
                                seen[ny * side + nx] = true;
                                stack.push((nx, ny));
                            }
                        }
                    }
                }
                if area >= geometry.min_component {
                    label.components[strip] += 1;
                    if !(geometry.well_formed.0..=geometry.well_formed.1).contains(&area) {
                        label.malformed += 1;
                    }
                }
            }
        }
    }
    label.empty = label.components.iter().all(|&c| c == 0);
    label.hallucinated = label.components.iter().any(|&c| c >= 2);
    Ok(label)
}

/// Labels a batch of `side²`-value images back to back.
///
/// # Errors
/// If the batch length is not a multiple of `side²`.
pub fn label_batch(images: &[f32], geometry: &StripGeometry) -> Result<Vec<ShapesLabel>> {
    let d = geometry.side * geometry.side;
    ensure!(
        images.len().is_multiple_of(d),
        "shapes labeller: {} values is not a whole number of {d}-pixel images",
        images.len()
    );
    images
        .chunks_exact(d)
        .map(|im| label_image(im, geometry))
        .collect()
}

/// Totals over a labelled batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShapesSummary {
    /// Images labelled.
    pub n: usize,
    /// Hallucinated images (some strip with ≥ 2 components).
    pub hallucinated: usize,
    /// Images with no counted component.
    pub empty: usize,
    /// Images with at least one malformed component.
    pub with_malformed: usize,
}

impl ShapesSummary {
    /// Sums `labels`.
    #[must_use]
    pub fn of(labels: &[ShapesLabel]) -> Self {
        Self {
            n: labels.len(),
            hallucinated: labels.iter().filter(|l| l.hallucinated).count(),
            empty: labels.iter().filter(|l| l.empty).count(),
            with_malformed: labels.iter().filter(|l| l.malformed > 0).count(),
        }
    }

    /// Fraction hallucinated (0 when empty).
    #[must_use]
    pub fn hallucinated_fraction(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.hallucinated as f64 / self.n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::shapes::{SIDE, ShapeKind, ShapeMeta, ShapesSet, draw};
    use super::*;

    fn canvas_of(shapes: &[(ShapeKind, usize, usize)]) -> Vec<u8> {
        let mut canvas = vec![0u8; SIDE * SIDE];
        for &(kind, x1, y1) in shapes {
            draw(
                &mut canvas,
                &ShapeMeta {
                    kind,
                    x1,
                    y1,
                    size: kind.size(),
                },
            )
            .unwrap();
        }
        canvas
    }

    fn unit(canvas: &[u8]) -> Vec<f32> {
        canvas.iter().map(|&p| f32::from(p) / 127.5 - 1.0).collect()
    }

    /// Copies the drawn content of `from_panel` into `to_panel` (a "second shape in a column").
    fn paste_panel(canvas: &mut [u8], source: &[u8], from_panel: usize, to_panel: usize) {
        for y in 0..63 {
            for x in 0..21 {
                let v = source[y * SIDE + from_panel * 21 + x];
                if v == 255 {
                    canvas[y * SIDE + to_panel * 21 + x] = 255;
                }
            }
        }
    }

    #[test]
    fn counts_zero_one_and_two_shapes_per_column() {
        let g = StripGeometry::FULL;
        let empty = label_image(&unit(&canvas_of(&[])), &g).unwrap();
        assert!(empty.empty && !empty.hallucinated && empty.components == [0, 0, 0]);

        let one = label_image(
            &unit(&canvas_of(&[
                (ShapeKind::Triangle, 3, 4),
                (ShapeKind::Pentagon, 9, 40),
            ])),
            &g,
        )
        .unwrap();
        assert_eq!(one.components, [1, 0, 1]);
        assert!(!one.empty && !one.hallucinated && one.malformed == 0);

        // Two squares in the square column, far apart vertically: hallucinated.
        let mut two = canvas_of(&[(ShapeKind::Square, 2, 1)]);
        let other = canvas_of(&[(ShapeKind::Square, 6, 40)]);
        paste_panel(&mut two, &other, 1, 1);
        let l = label_image(&unit(&two), &g).unwrap();
        assert_eq!(l.components, [0, 2, 0]);
        assert!(l.hallucinated && l.malformed == 0);

        // A pentagon pasted into the triangle column: hallucinated, still well formed.
        let mut mixed = canvas_of(&[(ShapeKind::Triangle, 0, 0)]);
        paste_panel(
            &mut mixed,
            &canvas_of(&[(ShapeKind::Pentagon, 8, 30)]),
            2,
            0,
        );
        assert_eq!(
            label_image(&unit(&mixed), &g).unwrap().components,
            [2, 0, 0]
        );
    }

    #[test]
    fn small_specks_are_ignored_and_blobs_are_malformed() {
        let g = StripGeometry::FULL;
        let mut canvas = canvas_of(&[(ShapeKind::Square, 3, 3)]);
        // A 15-px speck (3×5) in the square column: ignored. A 16-px one would count.
        for y in 40..45 {
            for x in 21 + 10..21 + 13 {
                canvas[y * SIDE + x] = 255;
            }
        }
        let l = label_image(&unit(&canvas), &g).unwrap();
        assert_eq!(l.components, [0, 1, 0]);
        canvas[45 * SIDE + 31] = 255; // now 16 px: counted
        canvas[50 * SIDE + 38] = 255; // an isolated pixel: ignored
        let l = label_image(&unit(&canvas), &g).unwrap();
        assert_eq!(l.components, [0, 2, 0]);
        assert_eq!(l.malformed, 1, "a 16-px component is outside 48–88");
        // Diagonal neighbours join: a 1-px-wide diagonal line of 20 px is one component.
        let mut diag = vec![0u8; SIDE * SIDE];
        for k in 0..20 {
            diag[(k + 2) * SIDE + 42 + k] = 255;
        }
        assert_eq!(label_image(&unit(&diag), &g).unwrap().components, [0, 0, 1]);
        // Components do not leak across strip borders: a bar over x = 20..=21 splits in two.
        let mut bar = vec![0u8; SIDE * SIDE];
        for y in 0..20 {
            for x in 17..25 {
                bar[y * SIDE + x] = 255;
            }
        }
        assert_eq!(label_image(&unit(&bar), &g).unwrap().components, [1, 1, 0]);
    }

    #[test]
    fn training_images_are_never_hallucinated_or_malformed_at_both_sides() {
        let set = ShapesSet::generate(2_000, 77).unwrap();
        for side in [64, 32] {
            let g = StripGeometry::for_side(side).unwrap();
            let labels = label_batch(&set.to_unit(side).unwrap(), &g).unwrap();
            for (l, shapes) in labels.iter().zip(&set.shapes) {
                assert!(
                    !l.hallucinated && !l.empty && l.malformed == 0,
                    "side {side}: {l:?} for {shapes:?}"
                );
                for k in ShapeKind::ALL {
                    let present = shapes.iter().any(|s| s.kind == k);
                    assert_eq!(
                        l.components[k.panel()],
                        usize::from(present),
                        "side {side} {shapes:?}"
                    );
                }
            }
        }
        assert!(StripGeometry::for_side(16).is_err());
        assert!(label_batch(&[0.0; 100], &StripGeometry::HALF).is_err());
    }
}
