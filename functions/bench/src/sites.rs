//! Fixed-seed synthetic sites: the same bytes on every run and every machine.
//! - small: 200 files;
//! - main: 2,000 files, 21.4 MB, in the mix a built SPA or docs site has;
//! - large: a 1 GiB artifact of a few big files.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SiteKind {
    Small,
    Main,
    Large,
}

/// One kind of file in the mix: how many, and how large on average.
struct Mix {
    folder: &'static str,
    extension: &'static str,
    count: usize,
    mean_bytes: usize,
    /// Text compresses; images and fonts do not.
    text: bool,
}

/// The main site's mix: 2,000 files, 21.4 MB.
const MAIN_MIX: [Mix; 6] = [
    Mix {
        folder: "docs",
        extension: "html",
        count: 400,
        mean_bytes: 6_000,
        text: true,
    },
    Mix {
        folder: "assets",
        extension: "js",
        count: 300,
        mean_bytes: 24_000,
        text: true,
    },
    Mix {
        folder: "assets",
        extension: "css",
        count: 150,
        mean_bytes: 8_000,
        text: true,
    },
    Mix {
        folder: "img",
        extension: "svg",
        count: 300,
        mean_bytes: 3_000,
        text: true,
    },
    Mix {
        folder: "img",
        extension: "png",
        count: 250,
        mean_bytes: 20_000,
        text: false,
    },
    Mix {
        folder: "data",
        extension: "json",
        count: 600,
        mean_bytes: 3_500,
        text: true,
    },
];

/// The large artifact: 8 × 128 MiB.
const LARGE_FILES: usize = 8;
const LARGE_FILE_BYTES: usize = 128 * 1024 * 1024;

const SEED: u64 = 0x5eed_0f51_1b0a_7001;

/// A deterministic byte source (xorshift64*).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// Words from a small vocabulary: compresses like real markup and code.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: [&str; 16] = [
            "function", "return", "const", "deploy", "slipway", "<div>", "</div>", "class",
            "export", "import", "value", "{", "}", "=>", "static", "site",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            out.extend_from_slice(WORDS[self.below(WORDS.len())].as_bytes());
            out.push(if self.below(8) == 0 { b'\n' } else { b' ' });
        }
        out.truncate(len);
        out
    }
}

/// Writes the site under `dir` and returns its files (relative paths) and total bytes.
pub fn generate(kind: SiteKind, dir: &Path) -> io::Result<(Vec<PathBuf>, u64)> {
    let mut noise = Noise(SEED);
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut write = |relative: PathBuf, bytes: &[u8]| -> io::Result<()> {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::File::create(&path)?.write_all(bytes)?;
        total += bytes.len() as u64;
        files.push(relative);
        Ok(())
    };
    match kind {
        SiteKind::Large => return generate_media(dir, LARGE_FILES, LARGE_FILE_BYTES),
        SiteKind::Small | SiteKind::Main => {
            let scale = if kind == SiteKind::Small { 10 } else { 1 };
            write(PathBuf::from("index.html"), &noise.text(8_000))?;
            for mix in &MAIN_MIX {
                for n in 0..mix.count / scale - usize::from(mix.extension == "html") {
                    // Sizes spread from a quarter to twice the mean.
                    let len = mix.mean_bytes / 4 + noise.below(mix.mean_bytes * 7 / 4);
                    let bytes = if mix.text {
                        noise.text(len)
                    } else {
                        let mut buf = vec![0u8; len];
                        noise.fill(&mut buf);
                        buf
                    };
                    // Hashed asset names, as bundlers write them.
                    let name = match mix.folder {
                        "assets" => format!(
                            "{}/chunk-{n}.{:08x}.{}",
                            mix.folder,
                            noise.next() as u32,
                            mix.extension
                        ),
                        "docs" => format!(
                            "{}/section-{}/page-{n}.{}",
                            mix.folder,
                            n % 20,
                            mix.extension
                        ),
                        _ => format!("{}/{n}.{}", mix.folder, mix.extension),
                    };
                    write(PathBuf::from(name), &bytes)?;
                }
            }
        }
    }
    Ok((files, total))
}

/// The large artifact's shape at another scale (`files` × `file_bytes` of media and a page):
/// the 1 GiB artifact is `generate(Large)`; quick runs take a smaller one.
pub fn generate_media(
    dir: &Path,
    files: usize,
    file_bytes: usize,
) -> io::Result<(Vec<PathBuf>, u64)> {
    let mut noise = Noise(SEED);
    let mut written = Vec::new();
    let mut total = 0u64;
    let mut buf = vec![0u8; file_bytes];
    for n in 0..files {
        noise.fill(&mut buf);
        let relative = PathBuf::from(format!("media/video-{n}.bin"));
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &buf)?;
        total += buf.len() as u64;
        written.push(relative);
    }
    let page = noise.text(4_000);
    std::fs::write(dir.join("index.html"), &page)?;
    total += page.len() as u64;
    written.push(PathBuf::from("index.html"));
    Ok((written, total))
}

/// Zips `dir` (its `files`) to `zip_path`, stored without compression for media and deflated
/// for text, as a build's output zip would be.
pub fn zip_dir(dir: &Path, files: &[PathBuf], zip_path: &Path) -> io::Result<u64> {
    let file = std::fs::File::create(zip_path)?;
    let mut writer = zip::ZipWriter::new(io::BufWriter::new(file));
    for relative in files {
        let name = relative.to_string_lossy().replace('\\', "/");
        let incompressible = name.ends_with(".png") || name.ends_with(".bin");
        let method = if incompressible {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(true);
        writer.start_file(name, options).map_err(io::Error::other)?;
        let mut source = std::fs::File::open(dir.join(relative))?;
        io::copy(&mut source, &mut writer)?;
    }
    writer.finish().map_err(io::Error::other)?.flush()?;
    Ok(std::fs::metadata(zip_path)?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_site_has_its_size_and_is_the_same_every_time() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (files, total) = generate(SiteKind::Main, a.path()).unwrap();
        assert_eq!(files.len(), 2_000);
        assert_eq!(total, 21_357_200);
        let (_, again) = generate(SiteKind::Main, b.path()).unwrap();
        assert_eq!(total, again);
        let first = std::fs::read(a.path().join(&files[500])).unwrap();
        assert_eq!(first, std::fs::read(b.path().join(&files[500])).unwrap());
        let (small, _) = generate(SiteKind::Small, b.path().join("small").as_path()).unwrap();
        assert_eq!(small.len(), 200);
    }
}
