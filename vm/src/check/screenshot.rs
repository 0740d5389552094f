//! The `screenshot` check: what the VM's screen shows, kept as a PNG, and a test that it is not blank.
//!
//! The screen is taken with QMP `screendump` in PPM, which every QEMU version writes (PNG output needs QEMU 7.1+
//! built with libpng), analysed, and stored as PNG (zlib through flate2, CRC-32 from flate2) in the evidence
//! folder. "Not blank" means at least `min_colours` distinct colours and at least `min_fraction` of the pixels
//! differing from the most common (background) colour: a black screen, or one filled with a single colour, is
//! blank; a text console with one line of text is not. A screen that is not blank may still show an error
//! ("No bootable device"): the screenshot is evidence for a person, the boot check is the verdict on booting.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::{VmCheckResult, VmCheckStatus};
use crate::error::{Result, VmError};
use crate::machine::Vm;

/// What a screenshot must show.
#[derive(Debug, Clone)]
pub struct ScreenshotCheck {
    /// Check name.
    pub name: String,
    /// PNG file name in the evidence folder.
    pub file_name: String,
    /// Fewest distinct colours (default 2).
    pub min_colours: usize,
    /// Smallest share of pixels that differ from the background colour (default 0.0005: 144 pixels of a
    /// 720×400 text screen, about two characters).
    pub min_fraction: f64,
}

impl Default for ScreenshotCheck {
    fn default() -> Self {
        ScreenshotCheck {
            name: "screenshot".into(),
            file_name: "screenshot.png".into(),
            min_colours: 2,
            min_fraction: 0.0005,
        }
    }
}

/// What a screenshot showed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenStats {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Distinct colours (counting stops at 65536).
    pub colours: usize,
    /// Share of pixels that are not the most common colour.
    pub foreground: f64,
    /// The PNG written.
    pub png: PathBuf,
}

/// An RGB image, 8 bits per channel, rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

/// Parses a binary PPM (`P6`, maxval ≤ 255) as QEMU's screendump writes it. Never panics on bad bytes.
pub fn parse_ppm(b: &[u8]) -> std::result::Result<Rgb, String> {
    let mut pos = 0usize;
    let mut fields = Vec::new();
    while fields.len() < 4 {
        // Skip whitespace and comments.
        loop {
            match b.get(pos) {
                Some(c) if c.is_ascii_whitespace() => pos += 1,
                Some(b'#') => {
                    while b.get(pos).is_some_and(|&c| c != b'\n') {
                        pos += 1;
                    }
                }
                Some(_) => break,
                None => return Err(format!("PPM header ends after {} fields", fields.len())),
            }
        }
        let start = pos;
        while b.get(pos).is_some_and(|c| !c.is_ascii_whitespace()) {
            pos += 1;
        }
        fields.push(&b[start..pos]);
    }
    if fields[0] != b"P6" {
        return Err(format!(
            "not a binary PPM (magic {:?})",
            String::from_utf8_lossy(fields[0])
        ));
    }
    let num = |f: &[u8], what: &str| -> std::result::Result<u32, String> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| {
                format!(
                    "PPM {what} {:?} is not a number",
                    String::from_utf8_lossy(f)
                )
            })
    };
    let (w, h, max) = (
        num(fields[1], "width")?,
        num(fields[2], "height")?,
        num(fields[3], "maxval")?,
    );
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(format!("PPM size {w}x{h} is out of range"));
    }
    if max == 0 || max > 255 {
        return Err(format!("PPM maxval {max} is not supported (1..255)"));
    }
    pos += 1; // the single whitespace byte after maxval
    let need = w as usize * h as usize * 3;
    let data = b
        .get(pos..)
        .filter(|d| d.len() >= need)
        .ok_or_else(|| format!("PPM pixel data is shorter than {need} bytes"))?;
    Ok(Rgb {
        width: w,
        height: h,
        pixels: data[..need].to_vec(),
    })
}

/// Encodes RGB as a PNG (colour type 2, 8 bits, no filtering, zlib level 6).
pub fn encode_png(img: &Rgb) -> std::io::Result<Vec<u8>> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&img.width.to_be_bytes());
    ihdr.extend_from_slice(&img.height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let row = img.width as usize * 3;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    for r in img.pixels.chunks(row) {
        z.write_all(&[0])?;
        z.write_all(r)?;
    }
    chunk(&mut out, b"IDAT", &z.finish()?);
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Distinct colours (up to 65536) and the share of pixels that are not the most common colour.
pub fn analyse(img: &Rgb) -> (usize, f64) {
    let mut counts: HashMap<[u8; 3], u64> = HashMap::new();
    let mut total = 0u64;
    for p in img.pixels.chunks_exact(3) {
        total += 1;
        let key = [p[0], p[1], p[2]];
        if counts.len() < 65536 || counts.contains_key(&key) {
            *counts.entry(key).or_default() += 1;
        }
    }
    let bg = counts.values().copied().max().unwrap_or(0);
    let fg = if total == 0 {
        0.0
    } else {
        (total - bg) as f64 / total as f64
    };
    (counts.len(), fg)
}

/// Takes a screenshot now and writes it as `png`. Usable as evidence outside the check (e.g. when the boot
/// check failed).
pub fn take(vm: &mut Vm, png: &Path) -> Result<ScreenStats> {
    let ppm = vm
        .spec()
        .run_dir
        .join(format!("screendump-{}.ppm", std::process::id()));
    let _ = std::fs::remove_file(&ppm);
    vm.qmp_execute(
        "screendump",
        Some(json!({ "filename": ppm.to_string_lossy() })),
    )?;
    let bytes =
        std::fs::read(&ppm).map_err(|e| VmError::io("cannot read the screendump", &ppm, e))?;
    let _ = std::fs::remove_file(&ppm);
    let img = parse_ppm(&bytes).map_err(|e| VmError::qmp("screendump", e))?;
    let (colours, foreground) = analyse(&img);
    let data = encode_png(&img).map_err(|e| VmError::io("cannot encode", png, e))?;
    std::fs::write(png, data).map_err(|e| VmError::io("cannot write", png, e))?;
    Ok(ScreenStats {
        width: img.width,
        height: img.height,
        colours,
        foreground,
        png: png.to_path_buf(),
    })
}

/// Takes the screenshot and judges it. Evidence: the PNG.
pub fn run(vm: &mut Vm, check: &ScreenshotCheck) -> VmCheckResult {
    let t = Instant::now();
    let r = VmCheckResult::new(
        check.name.clone(),
        "screenshot",
        format!(
            "a screen that is not blank (≥ {} colours, ≥ {:.2} % of pixels not background)",
            check.min_colours,
            check.min_fraction * 100.0
        ),
        t,
    );
    let png = vm.spec().evidence_dir.join(&check.file_name);
    match take(vm, &png) {
        Ok(s) => {
            let blank = s.colours < check.min_colours || s.foreground < check.min_fraction;
            let mut r = r.done(
                if blank {
                    VmCheckStatus::Failed
                } else {
                    VmCheckStatus::Passed
                },
                format!(
                    "{}x{}, {} colours, {:.2} % of pixels not background",
                    s.width,
                    s.height,
                    s.colours,
                    s.foreground * 100.0
                ),
                if blank {
                    "the screen is blank: the guest shows nothing (no boot loader, no console); see the PNG"
                } else {
                    ""
                },
                t,
            );
            r.evidence.push(s.png);
            r
        }
        Err(e) => {
            let running = vm.is_running();
            r.done(
                VmCheckStatus::Error,
                if running {
                    "no screenshot".to_string()
                } else {
                    "no screenshot: QEMU is no longer running".to_string()
                },
                e.to_string(),
                t,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_round_trip_to_png_and_blank_test() {
        let mut ppm = b"P6\n# QEMU\n4 2\n255\n".to_vec();
        let mut px = vec![0u8; 4 * 2 * 3];
        px[3..6].copy_from_slice(&[255, 255, 255]);
        ppm.extend_from_slice(&px);
        let img = parse_ppm(&ppm).unwrap();
        assert_eq!((img.width, img.height), (4, 2));
        assert_eq!(analyse(&img), (2, 1.0 / 8.0));
        let png = encode_png(&img).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 4);
        // The IDAT inflates to two rows of filter byte 0 + 12 bytes.
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw.len(), 2 * 13);
        assert_eq!(&raw[1..13], &px[..12]);
        let black = Rgb {
            width: 2,
            height: 2,
            pixels: vec![0; 12],
        };
        assert_eq!(analyse(&black), (1, 0.0));
    }

    #[test]
    fn bad_ppm_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"P6",
            b"P5\n1 1\n255\n\0",
            b"P6\n1 1\n255\n",
            b"P6\n99999 1\n255\n",
            b"P6\nx 1\n255\n",
            b"P6\n1 1\n65535\n\0\0\0\0\0\0",
            b"P6 # only a comment",
        ] {
            assert!(parse_ppm(bad).is_err(), "{bad:?}");
        }
    }
}
