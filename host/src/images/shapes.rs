//! The Simple Shapes dataset of Aithal et al. 2024 (papers.md §1.2, *paper's code*).
//!
//! A 64×64 u8 canvas (background 0, shapes 255) split into three panels 21 px wide and
//! 63 px tall: triangle at x 0–20, square at 21–41, pentagon at 42–62 (row and column 63
//! stay 0). In the order triangle, square, pentagon each shape is drawn iff u ≤ 0.5, at
//! inclusive integer panel-local positions; empty images are dropped. The rasters are
//! PIL's fills of the paper's polygons, hard-coded:
//!
//! | shape | raster | placement | area |
//! |---|---|---|---|
//! | triangle | 12×10 at (x1, y1) | x1 ∈ [0,10], y1 ∈ [0,52] | 65 px (64 at x1 = 10, clipped) |
//! | square | 8×8 at (x1, y1) | x1 ∈ [1,7], y1 ∈ [1,49] | 64 px |
//! | pentagon | 11×10 at (x1−5, y1−5) | x1 ∈ [5,16], y1 ∈ [5,58] | 70 px (69 at x1 = 16, clipped) |
//!
//! Expected mix: 3/7 of images hold one shape, 3/7 two, 1/7 three; each type is in 4/7.
//! Never two shapes in one panel: that is what a hallucination is (see [`super::label`]).
//!
//! For fast CPU training, [`ShapesSet::to_unit`] can downscale 2× (2×2 mean) to 32×32; the
//! labeller scales its geometry with it ([`super::label::StripGeometry`]).

use anyhow::{Result, bail, ensure};
use rand_core::Rng;

use mirage_core::noise::chacha_stream;

/// Side of the full-resolution canvas.
pub const SIDE: usize = 64;
/// Width of one panel.
pub const PANEL_WIDTH: usize = 21;
/// Height of one panel (row 63 stays 0).
pub const PANEL_HEIGHT: usize = 63;
/// The paper's training-set size.
pub const PAPER_COUNT: usize = 5_000;
/// ChaCha stream for the generator (papers.md D7).
pub const SHAPES_STREAM: u64 = 0x7368_6170; // "shap"

const TRIANGLE: [&str; 10] = [
    "############",
    ".##########.",
    ".##########.",
    "..########..",
    "..#######...",
    "...######...",
    "...#####....",
    "....###.....",
    "....###.....",
    ".....#......",
];

const PENTAGON: [&str; 10] = [
    "......#....",
    "...#####...",
    "#########..",
    "#########..",
    "##########.",
    "###########",
    "##########.",
    "#########..",
    "...#####...",
    "......#....",
];

/// The three shape types, in panel order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    /// Panel 0 (x 0–20), points down.
    Triangle,
    /// Panel 1 (x 21–41).
    Square,
    /// Panel 2 (x 42–62).
    Pentagon,
}

impl ShapeKind {
    /// All kinds in drawing (and panel) order.
    pub const ALL: [Self; 3] = [Self::Triangle, Self::Square, Self::Pentagon];

    /// The panel index (0, 1, 2).
    #[must_use]
    pub fn panel(self) -> usize {
        match self {
            Self::Triangle => 0,
            Self::Square => 1,
            Self::Pentagon => 2,
        }
    }

    /// Inclusive ranges of (x1, y1), panel-local.
    #[must_use]
    pub fn placement(self) -> ([usize; 2], [usize; 2]) {
        match self {
            Self::Triangle => ([0, 10], [0, 52]),
            Self::Square => ([1, 7], [1, 49]),
            Self::Pentagon => ([5, 16], [5, 58]),
        }
    }

    /// The size parameter recorded in the metadata: triangle base offset 11, square side 8,
    /// pentagon circumradius 5.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            Self::Triangle => 11,
            Self::Square => 8,
            Self::Pentagon => 5,
        }
    }

    /// Calls `put(dx, dy)` for every raster pixel, offsets from the anchor (x1, y1).
    fn for_each_pixel(self, mut put: impl FnMut(isize, isize)) {
        match self {
            Self::Square => (0..8).for_each(|dy| (0..8).for_each(|dx| put(dx, dy))),
            Self::Triangle | Self::Pentagon => {
                let (rows, origin) = if self == Self::Triangle {
                    (&TRIANGLE, 0)
                } else {
                    (&PENTAGON, -5)
                };
                for (dy, row) in rows.iter().enumerate() {
                    for (dx, c) in row.bytes().enumerate() {
                        if c == b'#' {
                            put(dx as isize + origin, dy as isize + origin);
                        }
                    }
                }
            }
        }
    }
}

/// One drawn shape: its kind, panel-local anchor (x1, y1) and size parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShapeMeta {
    /// Which shape.
    pub kind: ShapeKind,
    /// Panel-local x of the anchor.
    pub x1: usize,
    /// y of the anchor.
    pub y1: usize,
    /// [`ShapeKind::size`].
    pub size: usize,
}

/// Draws `shape` into a 64×64 canvas, clipped to its panel; returns the pixels set.
///
/// # Errors
/// If the anchor is outside the shape's placement range.
pub fn draw(canvas: &mut [u8], shape: &ShapeMeta) -> Result<usize> {
    ensure!(
        canvas.len() == SIDE * SIDE,
        "canvas holds {} bytes, not 64×64",
        canvas.len()
    );
    let ([x_lo, x_hi], [y_lo, y_hi]) = shape.kind.placement();
    ensure!(
        (x_lo..=x_hi).contains(&shape.x1) && (y_lo..=y_hi).contains(&shape.y1),
        "{:?} anchor ({}, {}) outside x {x_lo}..={x_hi}, y {y_lo}..={y_hi}",
        shape.kind,
        shape.x1,
        shape.y1
    );
    let offset = shape.kind.panel() * PANEL_WIDTH;
    let mut area = 0;
    shape.kind.for_each_pixel(|dx, dy| {
        let (x, y) = (shape.x1 as isize + dx, shape.y1 as isize + dy);
        if (0..PANEL_WIDTH as isize).contains(&x) && (0..PANEL_HEIGHT as isize).contains(&y) {
            canvas[y as usize * SIDE + offset + x as usize] = 255;
            area += 1;
        }
    });
    Ok(area)
}

/// A generated Simple Shapes set: 64×64 u8 images back to back, and their shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapesSet {
    /// `len · 4096` bytes, row-major.
    pub pixels: Vec<u8>,
    /// The shapes of each image, in drawing order.
    pub shapes: Vec<Vec<ShapeMeta>>,
}

/// Inclusive integer draw in [lo, hi] (multiply-shift, bias < 2⁻³²).
fn draw_int(rng: &mut impl Rng, lo: usize, hi: usize) -> usize {
    let n = (hi - lo + 1) as u64;
    lo + ((u64::from(rng.next_u32()) * n) >> 32) as usize
}

impl ShapesSet {
    /// Generates `count` non-empty images from `seed` (ChaCha stream [`SHAPES_STREAM`]),
    /// giving up after `count · 8/5` tries (8,000 for the paper's 5,000).
    ///
    /// # Errors
    /// `count == 0`, or the try cap is reached.
    pub fn generate(count: usize, seed: u64) -> Result<Self> {
        ensure!(count > 0, "shapes: asked for 0 images");
        let cap = count * 8 / 5;
        let mut rng = chacha_stream(seed, SHAPES_STREAM);
        let mut set = Self {
            pixels: Vec::with_capacity(count * SIDE * SIDE),
            shapes: Vec::with_capacity(count),
        };
        let mut canvas = vec![0u8; SIDE * SIDE];
        for _ in 0..cap {
            canvas.fill(0);
            let mut drawn = Vec::new();
            for kind in ShapeKind::ALL {
                // u uniform on [0, 1) from the top 24 bits; present iff u ≤ 0.5.
                let u = f64::from(rng.next_u32() >> 8) / 16_777_216.0;
                if u <= 0.5 {
                    let ([x_lo, x_hi], [y_lo, y_hi]) = kind.placement();
                    let x1 = draw_int(&mut rng, x_lo, x_hi);
                    let y1 = draw_int(&mut rng, y_lo, y_hi);
                    let meta = ShapeMeta {
                        kind,
                        x1,
                        y1,
                        size: kind.size(),
                    };
                    draw(&mut canvas, &meta)?;
                    drawn.push(meta);
                }
            }
            if !drawn.is_empty() {
                set.pixels.extend_from_slice(&canvas);
                set.shapes.push(drawn);
                if set.shapes.len() == count {
                    return Ok(set);
                }
            }
        }
        bail!(
            "shapes: only {} non-empty images after {cap} tries (wanted {count})",
            set.shapes.len()
        )
    }

    /// Number of images.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// True when there are no images.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// The images as f32 on [−1, 1] (p/127.5 − 1), each `side × side`: `side` = 64 keeps
    /// full resolution, 32 takes the 2×2 mean first (then 2×2 blocks half covered map to
    /// exactly 0, which the labeller's "≥ 0" counts as on).
    ///
    /// # Errors
    /// `side` not 64 or 32.
    pub fn to_unit(&self, side: usize) -> Result<Vec<f32>> {
        let factor = match side {
            64 => 1,
            32 => 2,
            _ => bail!("shapes: image side must be 64 or 32, not {side}"),
        };
        let mut out = Vec::with_capacity(self.len() * side * side);
        for image in self.pixels.chunks_exact(SIDE * SIDE) {
            for y in 0..side {
                for x in 0..side {
                    let mut sum = 0u32;
                    for dy in 0..factor {
                        for dx in 0..factor {
                            sum += u32::from(image[(y * factor + dy) * SIDE + x * factor + dx]);
                        }
                    }
                    let mean = f64::from(sum) / (factor * factor) as f64;
                    out.push((mean / 127.5 - 1.0) as f32);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn area_of(kind: ShapeKind, x1: usize, y1: usize) -> usize {
        let mut canvas = vec![0u8; SIDE * SIDE];
        let area = draw(
            &mut canvas,
            &ShapeMeta {
                kind,
                x1,
                y1,
                size: kind.size(),
            },
        )
        .unwrap();
        assert_eq!(area, canvas.iter().filter(|&&p| p == 255).count());
        area
    }

    #[test]
    fn mask_areas_are_64_65_70_and_clip_at_the_panel_edge() {
        for x1 in 1..=7 {
            assert_eq!(area_of(ShapeKind::Square, x1, 1), 64);
        }
        for x1 in 0..=10 {
            assert_eq!(
                area_of(ShapeKind::Triangle, x1, 52),
                if x1 == 10 { 64 } else { 65 }
            );
        }
        for x1 in 5..=16 {
            assert_eq!(
                area_of(ShapeKind::Pentagon, x1, 58),
                if x1 == 16 { 69 } else { 70 }
            );
        }
        let mut canvas = vec![0u8; SIDE * SIDE];
        let bad = ShapeMeta {
            kind: ShapeKind::Square,
            x1: 8,
            y1: 1,
            size: 8,
        };
        assert!(
            draw(&mut canvas, &bad)
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
    }

    /// Signed test of a point against a convex polygon: (inside, distance to the boundary).
    fn polygon_relation(p: (f64, f64), vertices: &[(f64, f64)]) -> (bool, f64) {
        let n = vertices.len();
        let mut sign = 0.0f64;
        let mut inside = true;
        let mut dist = f64::INFINITY;
        for k in 0..n {
            let (a, b) = (vertices[k], vertices[(k + 1) % n]);
            let cross = (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
            if sign == 0.0 {
                sign = cross.signum();
            } else if cross.signum() != sign && cross != 0.0 {
                inside = false;
            }
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let t = (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
            dist = dist.min(((p.0 - a.0 - t * dx).powi(2) + (p.1 - a.1 - t * dy).powi(2)).sqrt());
        }
        (inside, dist)
    }

    #[test]
    fn rasters_match_the_paper_polygons() {
        // Triangle (x1,y1), (x1+11,y1), (x1+5,y1+9); pentagon (x1 + 5 cos a, y1 − 5 sin a),
        // a = 72°…360°. PIL fills pixels whose centre (integer coordinates) is inside and
        // outlines the boundary, so: deep inside ⇒ set, clearly outside ⇒ clear.
        let (x1, y1) = (5usize, 20usize);
        let triangle = [(5.0, 20.0), (16.0, 20.0), (10.0, 29.0)];
        let pentagon: Vec<(f64, f64)> = (1..=5)
            .map(|k| {
                let a = (72.0 * f64::from(k)).to_radians();
                (x1 as f64 + 5.0 * a.cos(), y1 as f64 - 5.0 * a.sin())
            })
            .collect();
        for (kind, poly) in [
            (ShapeKind::Triangle, triangle.to_vec()),
            (ShapeKind::Pentagon, pentagon),
        ] {
            let mut canvas = vec![0u8; SIDE * SIDE];
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
            let offset = kind.panel() * PANEL_WIDTH;
            for y in 0..PANEL_HEIGHT {
                for x in 0..PANEL_WIDTH {
                    let on = canvas[y * SIDE + offset + x] == 255;
                    let (inside, dist) = polygon_relation((x as f64, y as f64), &poly);
                    if inside && dist > 0.75 {
                        assert!(on, "{kind:?}: ({x},{y}) inside but clear");
                    }
                    if !inside && dist > 1.0 {
                        assert!(!on, "{kind:?}: ({x},{y}) outside but set");
                    }
                }
            }
        }
    }

    #[test]
    fn every_shape_stays_in_its_panel_and_row_63_is_empty() {
        let set = ShapesSet::generate(500, 3).unwrap();
        for (image, shapes) in set.pixels.chunks_exact(SIDE * SIDE).zip(&set.shapes) {
            assert!(!shapes.is_empty());
            assert!((0..SIDE).all(|i| image[63 * SIDE + i] == 0 && image[i * SIDE + 63] == 0));
            for panel in 0..3 {
                let lit = (0..PANEL_HEIGHT)
                    .flat_map(|y| (0..PANEL_WIDTH).map(move |x| (y, x)))
                    .filter(|(y, x)| image[y * SIDE + panel * PANEL_WIDTH + x] == 255)
                    .count();
                let present = shapes.iter().any(|s| s.kind.panel() == panel);
                assert_eq!(lit > 0, present, "panel {panel}");
                if present {
                    assert!((64..=70).contains(&lit), "panel {panel}: {lit} px");
                }
            }
        }
    }

    #[test]
    fn mix_is_within_three_sd_of_3_7_3_7_1_7_and_each_type_4_7() {
        let n = 5_000usize;
        let set = ShapesSet::generate(n, 1234).unwrap();
        let mut by_count = [0usize; 4];
        let mut by_kind = [0usize; 3];
        for shapes in &set.shapes {
            by_count[shapes.len()] += 1;
            for s in shapes {
                by_kind[s.kind.panel()] += 1;
            }
        }
        let within = |count: usize, p: f64| {
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            ((count as f64 / n as f64) - p).abs() <= 3.0 * sd
        };
        assert_eq!(by_count[0], 0);
        assert!(within(by_count[1], 3.0 / 7.0), "{by_count:?}");
        assert!(within(by_count[2], 3.0 / 7.0), "{by_count:?}");
        assert!(within(by_count[3], 1.0 / 7.0), "{by_count:?}");
        for k in by_kind {
            assert!(within(k, 4.0 / 7.0), "{by_kind:?}");
        }
    }

    #[test]
    fn seeded_and_downscaled_by_mean() {
        let a = ShapesSet::generate(20, 9).unwrap();
        assert_eq!(a, ShapesSet::generate(20, 9).unwrap());
        assert_ne!(a.pixels, ShapesSet::generate(20, 10).unwrap().pixels);
        let full = a.to_unit(64).unwrap();
        let half = a.to_unit(32).unwrap();
        assert_eq!(half.len(), 20 * 32 * 32);
        for (img, (f, h)) in full
            .chunks_exact(4096)
            .zip(half.chunks_exact(1024))
            .enumerate()
        {
            for y in 0..32 {
                for x in 0..32 {
                    let m = (f[2 * y * 64 + 2 * x]
                        + f[2 * y * 64 + 2 * x + 1]
                        + f[(2 * y + 1) * 64 + 2 * x]
                        + f[(2 * y + 1) * 64 + 2 * x + 1])
                        / 4.0;
                    assert!((m - h[y * 32 + x]).abs() < 1e-6, "image {img} ({x},{y})");
                }
            }
        }
        assert!(a.to_unit(48).is_err());
    }
}
