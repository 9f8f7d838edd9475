//! Which paths an archive may hold ([`EntryPath`]), and which sets of them collide once
//! extracted.

use std::collections::HashSet;
use std::fmt;

use super::error::shown;
use super::ZipError;

/// Why a path inside an archive was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeReason {
    Empty,
    TooLong,
    Absolute,
    DriveLetter,
    ParentSegment,
    Backslash,
    ControlCharacter,
    EmptySegment,
    DotSegment,
    NotUtf8,
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "has an empty name",
            Self::TooLong => "has a path longer than 1024 bytes",
            Self::Absolute => "is an absolute path",
            Self::DriveLetter => "starts with a Windows drive letter",
            Self::ParentSegment => "escapes the archive root",
            Self::Backslash => "uses a backslash; paths in a zip must use `/`",
            Self::ControlCharacter => "contains a control character",
            Self::EmptySegment => "contains an empty path segment (`//`)",
            Self::DotSegment => "contains a `.` path segment",
            Self::NotUtf8 => "is not valid UTF-8",
        })
    }
}

/// A relative, normalised path inside an archive: non-empty `/`-separated segments, none `.`, `..`
/// or empty, no backslash, no control character (NUL included), no drive letter, no leading `/`,
/// valid UTF-8, at most [`EntryPath::MAX_LEN`] bytes. Joining it under a directory can never
/// leave that directory, and it is usable as-is as the tail of an S3 key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryPath(String);

impl EntryPath {
    pub const MAX_LEN: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, ZipError> {
        let reject = |reason| ZipError::UnsafePath {
            path: shown(raw),
            reason,
        };
        if raw.is_empty() {
            return Err(reject(UnsafeReason::Empty));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(reject(UnsafeReason::TooLong));
        }
        if raw.starts_with('/') || raw.starts_with('\\') {
            return Err(reject(UnsafeReason::Absolute));
        }
        let bytes = raw.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(reject(UnsafeReason::DriveLetter));
        }
        // Checked across both separators so `..\x` reads as the escape it is meant to be.
        if raw.split(['/', '\\']).any(|segment| segment == "..") {
            return Err(reject(UnsafeReason::ParentSegment));
        }
        if raw.contains('\\') {
            return Err(reject(UnsafeReason::Backslash));
        }
        if raw.chars().any(char::is_control) {
            return Err(reject(UnsafeReason::ControlCharacter));
        }
        for segment in raw.split('/') {
            match segment {
                "" => return Err(reject(UnsafeReason::EmptySegment)),
                "." => return Err(reject(UnsafeReason::DotSegment)),
                _ => {}
            }
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The path below `root` (a folder prefix such as [`ZipManifest::common_root`] returns, with
    /// its trailing `/`), or `None` when the path is not under it.
    ///
    /// [`ZipManifest::common_root`]: super::ZipManifest::common_root
    pub fn strip_root(&self, root: &str) -> Option<EntryPath> {
        let rest = self.0.strip_prefix(root)?;
        if !root.ends_with('/') || rest.is_empty() {
            return None;
        }
        Some(Self(rest.to_owned()))
    }

    /// Every folder the path sits in, outermost first: `a/b/c` gives `a`, `a/b`.
    fn ancestors(&self) -> impl Iterator<Item = &str> {
        self.0
            .match_indices('/')
            .map(move |(slash, _)| &self.0[..slash])
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EntryPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Files that would collide once extracted: the same path twice, or a file where another entry
/// needs a folder (`a` and `a/b`).
pub(super) fn check_layout<'a>(
    files: impl IntoIterator<Item = &'a EntryPath>,
    explicit_dirs: impl IntoIterator<Item = &'a EntryPath>,
) -> Result<(), ZipError> {
    let mut file_set: HashSet<&str> = HashSet::new();
    let mut dir_set: HashSet<&str> = explicit_dirs.into_iter().map(EntryPath::as_str).collect();
    for path in files {
        if !file_set.insert(path.as_str()) {
            return Err(ZipError::DuplicateEntry {
                path: shown(path.as_str()),
            });
        }
        dir_set.extend(path.ancestors());
    }
    match file_set.iter().find(|file| dir_set.contains(*file)) {
        Some(file) => Err(ZipError::DuplicateEntry { path: shown(file) }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_accept_normal_names_and_refuse_escapes() {
        for good in [
            "index.html",
            "assets/index-BdK3x9Qz.js",
            "a/b/c/d.txt",
            "é/ü.html",
            "..foo",
            "a..b/c",
        ] {
            assert_eq!(EntryPath::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(1025);
        for (bad, reason) in [
            ("", UnsafeReason::Empty),
            (long.as_str(), UnsafeReason::TooLong),
            ("/etc/passwd", UnsafeReason::Absolute),
            ("C:\\x", UnsafeReason::DriveLetter),
            ("c:/x", UnsafeReason::DriveLetter),
            ("../x", UnsafeReason::ParentSegment),
            ("a/../../x", UnsafeReason::ParentSegment),
            ("..\\x", UnsafeReason::ParentSegment),
            ("a\\b", UnsafeReason::Backslash),
            ("a\0b", UnsafeReason::ControlCharacter),
            ("a\nb", UnsafeReason::ControlCharacter),
            ("a//b", UnsafeReason::EmptySegment),
            ("a/", UnsafeReason::EmptySegment),
            ("./a", UnsafeReason::DotSegment),
        ] {
            match EntryPath::parse(bad) {
                Err(ZipError::UnsafePath { reason: got, .. }) => {
                    assert_eq!(got, reason, "{bad:?}")
                }
                other => panic!("{bad:?} should be unsafe, got {other:?}"),
            }
        }
    }

    #[test]
    fn entry_path_helpers() {
        let path = EntryPath::parse("site/assets/app.js").unwrap();
        assert_eq!(path.file_name(), "app.js");
        assert_eq!(
            path.ancestors().collect::<Vec<_>>(),
            ["site", "site/assets"]
        );
        assert_eq!(path.strip_root("site/").unwrap().as_str(), "assets/app.js");
        assert_eq!(path.strip_root("sit"), None);
        assert_eq!(path.strip_root("other/"), None);
        assert_eq!(EntryPath::parse("one").unwrap().file_name(), "one");
    }
}
