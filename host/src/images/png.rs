//! Image grids as 8-bit grayscale PNG (ISO/IEC 15948): signature, IHDR, one IDAT holding a
//! zlib stream of *stored* (uncompressed) deflate blocks over filter-0 scanlines, IEND.
//! Chunk CRCs via `mirage_core::crc32`, Adler-32 by its definition. No compression keeps
//! this a few lines and dependency-free; grids are small. Written atomically.

use std::path::Path;

use anyhow::{Result, ensure};

use crate::io::atomic::write_atomic;

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = mirage_core::crc32::crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in bytes {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// Encodes a `width × height` grayscale image (row-major bytes) as PNG.
///
/// # Errors
/// Zero or oversized dimensions, or a pixel count that does not match.
pub fn encode_gray(width: usize, height: usize, pixels: &[u8]) -> Result<Vec<u8>> {
    ensure!(
        width > 0 && height > 0 && width <= 1 << 16 && height <= 1 << 16,
        "PNG: size {width}×{height} out of range"
    );
    ensure!(
        pixels.len() == width * height,
        "PNG: {} pixels for {width}×{height}",
        pixels.len()
    );
    let mut raw = Vec::with_capacity((width + 1) * height);
    for row in pixels.chunks_exact(width) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(block);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Writes up to `cols × cols` images (`side²` values on [−1, 1], clamped) as a grid with a
/// 1-px mid-grey border, each pixel scaled up `zoom` times.
///
/// # Errors
/// Empty input, bad sizes, or I/O.
pub fn write_grid(
    path: &Path,
    images: &[f32],
    side: usize,
    cols: usize,
    zoom: usize,
) -> Result<()> {
    let d = side * side;
    ensure!(
        d > 0 && cols > 0 && zoom > 0 && images.len() >= d,
        "image grid: nothing to draw"
    );
    let n = (images.len() / d).min(cols * cols);
    let rows = n.div_ceil(cols);
    let cell = side * zoom + 1;
    let (w, h) = (cols * cell + 1, rows * cell + 1);
    let mut px = vec![128u8; w * h];
    for (k, im) in images.chunks_exact(d).take(n).enumerate() {
        let (ox, oy) = ((k % cols) * cell + 1, (k / cols) * cell + 1);
        for y in 0..side * zoom {
            for x in 0..side * zoom {
                let v = im[(y / zoom) * side + x / zoom];
                px[(oy + y) * w + ox + x] = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
            }
        }
    }
    write_atomic(path, &encode_gray(w, h, &px)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_independent_decoder_reads_it_back() {
        let (w, h) = (300, 250); // > 65,535 raw bytes: several stored blocks
        let pixels: Vec<u8> = (0..w * h).map(|i| (i * 31 % 251) as u8).collect();
        let bytes = encode_gray(w, h, &pixels).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (w as u32, h as u32));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert_eq!(&buf[..w * h], &pixels[..]);
        assert!(encode_gray(0, 1, &[]).is_err());
        assert!(encode_gray(2, 2, &[0; 3]).is_err());
    }

    #[test]
    fn grid_places_and_scales_images() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.png");
        let images = [vec![-1.0f32; 4], vec![1.0f32; 4]].concat();
        write_grid(&path, &images, 2, 2, 3).unwrap();
        let mut reader =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()))
                .read_info()
                .unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (15, 8));
        assert_eq!(buf[15 + 1], 0);
        assert_eq!(buf[15 + 8], 255);
        assert_eq!(buf[0], 128);
    }
}
