//! Safe zip reading and writing: the pipeline's defence against hostile uploads.
//!
//! - `read`: opening an untrusted archive (`open_archive`, its `ZipLimits` and `ZipManifest`)
//!   and reading its entries (`read_entry`, `stream_entry`).
//! - `extract`: unpacking a checked archive onto disk (`extract_all`).
//! - `write`: zipping files and folders (`write_zip`, `zip_directory`).
//! - `entry_path`: what a path inside an archive may be (`EntryPath`, `UnsafeReason`).
//! - `error`: `ZipError`, what every part of this module fails with.

mod entry_path;
mod error;
mod extract;
mod read;
mod write;

pub use entry_path::{EntryPath, UnsafeReason};
pub use error::ZipError;
pub use extract::extract_all;
pub use read::{
    open_archive, read_entry, stream_entry, ZipEntry, ZipLimits, ZipManifest, RATIO_FLOOR,
};
pub use write::{write_zip, zip_directory};

/// Helpers the tests of several files share.
#[cfg(test)]
mod test_support {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    use super::{open_archive, ZipError, ZipLimits, ZipManifest};

    pub(super) fn written(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    type Opened = (zip::ZipArchive<Cursor<Vec<u8>>>, ZipManifest);

    pub(super) fn open(bytes: Vec<u8>) -> Result<Opened, ZipError> {
        open_archive(Cursor::new(bytes), &ZipLimits::default())
    }
}

/// Round trips through writing, opening and extracting.
#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::{self, Cursor};

    use zip::CompressionMethod;

    use super::test_support::open;
    use super::*;

    #[test]
    fn a_nested_site_round_trips_through_write_open_and_extract() {
        let src = tempfile::tempdir().unwrap();
        let site: Vec<(&str, Vec<u8>)> = vec![
            ("index.html", b"<h1>home</h1>".to_vec()),
            ("about/index.html", b"<h1>about</h1>".to_vec()),
            ("assets/js/app-BdK3x9Qz.js", b"console.log(1)".to_vec()),
            (
                "assets/img/logo.png",
                (0..=255u8).cycle().take(300_000).collect(),
            ),
            ("empty.txt", Vec::new()),
            ("d\u{e9}j\u{e0}-vu.html", b"unicode".to_vec()),
        ];
        for (path, data) in &site {
            let full = src.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, data).unwrap();
        }
        fs::create_dir(src.path().join("empty-dir")).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("leak")).unwrap();

        let mut zipped = Cursor::new(Vec::new());
        let (count, bytes) = zip_directory(src.path(), &mut zipped).unwrap();
        assert_eq!(count, site.len() as u64);
        assert_eq!(bytes, site.iter().map(|(_, d)| d.len() as u64).sum::<u64>());

        let (mut archive, manifest) =
            open_archive(Cursor::new(zipped.into_inner()), &ZipLimits::default()).unwrap();
        let mut names: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "written in sorted order");
        names.sort();
        let mut expected: Vec<&str> = site.iter().map(|(p, _)| *p).collect();
        expected.sort();
        assert_eq!(names, expected, "the symlink is left out");

        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        for (path, data) in &site {
            assert_eq!(&fs::read(dest.path().join(path)).unwrap(), data, "{path}");
        }
        assert!(!dest.path().join("leak").exists());

        // Extracting again over the same files refuses to overwrite.
        let err = extract_all(&mut archive, &manifest, dest.path()).unwrap_err();
        assert!(matches!(err, ZipError::Io(ref e) if e.kind() == io::ErrorKind::AlreadyExists));
    }

    #[cfg(unix)]
    #[test]
    fn the_execute_bit_survives_a_round_trip() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let script = src.path().join("build.sh");
        fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(src.path().join("index.html"), "x").unwrap();

        let mut zipped = Cursor::new(Vec::new());
        zip_directory(src.path(), &mut zipped).unwrap();
        let (mut archive, manifest) = open(zipped.into_inner()).unwrap();
        assert!(manifest.get("build.sh").unwrap().executable);
        assert!(!manifest.get("index.html").unwrap().executable);
        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        let mode = fs::metadata(dest.path().join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }

    #[test]
    fn compressed_formats_are_stored_and_everything_round_trips() {
        let src = tempfile::tempdir().unwrap();
        let files = [
            ("index.html", b"<p>hello hello hello hello</p>".to_vec()),
            ("img/Logo.PNG", vec![0x89, b'P', b'N', b'G', 1, 2, 3]),
            ("fonts/a.woff2", vec![7; 64]),
            ("data.v2/readme", b"text text text text".to_vec()),
        ];
        for (name, body) in &files {
            let path = src.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, body).unwrap();
        }
        let mut zipped = Cursor::new(Vec::new());
        zip_directory(src.path(), &mut zipped).unwrap();
        let bytes = zipped.into_inner();
        let mut raw = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
        for (name, expected) in [
            ("index.html", CompressionMethod::Deflated),
            ("img/Logo.PNG", CompressionMethod::Stored),
            ("fonts/a.woff2", CompressionMethod::Stored),
            ("data.v2/readme", CompressionMethod::Deflated),
        ] {
            assert_eq!(raw.by_name(name).unwrap().compression(), expected, "{name}");
        }
        let (mut archive, manifest) = open(bytes).unwrap();
        let dest = tempfile::tempdir().unwrap();
        extract_all(&mut archive, &manifest, dest.path()).unwrap();
        for (name, body) in &files {
            assert_eq!(&fs::read(dest.path().join(name)).unwrap(), body, "{name}");
        }
    }
}
