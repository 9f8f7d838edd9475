//! Turns a directory into the zip that `deploy` uploads.
//!
//! What goes in:
//! - Never, in either mode: `.git/`, slipway's own state directory `.slipway/`, `.DS_Store`,
//!   machine-local env files `.env.local` and `.env.*.local` (secrets, wherever they are), the
//!   ignore files `.gitignore` and `.slipwayignore` themselves, and symbolic links (skipped
//!   with a warning: following them could ship files from outside the directory). Other
//!   dotfiles (`.well-known/`, `.npmrc`) are kept.
//! - A prebuilt deploy also never carries `.env` or `.env.*`: published output has no use for
//!   them and would serve them to anyone. A source deploy keeps committed build-time files
//!   such as `.env.production` (Vite and Next read them while building), as Vercel does;
//!   its `.gitignore` keeps the secret ones out.
//! - `.slipwayignore` files (gitignore syntax, like `.vercelignore`) in the directory and
//!   below, in both modes. They take precedence over `.gitignore`, so a `!pattern` there
//!   brings back a gitignored file.
//! - A source deploy (the pipeline builds it) also honours `.gitignore` files, nested ones
//!   and those of parent directories, even outside a git repository, plus `.ignore` files and
//!   `.git/info/exclude`. Since parents are read, a parent's `.slipwayignore` applies too.
//!   The user's global git excludes are not read, so the same tree uploads the same files on
//!   every machine. `node_modules/` is left out: the build installs dependencies itself.
//! - A prebuilt deploy is output to publish as it is. It honours the `.gitignore` files
//!   inside the directory, but not those of its parents: a repository's `.gitignore` usually
//!   lists the build output directory itself (`dist/`), which would empty the deploy.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ignore::WalkBuilder;
use slipway_core::site::zipsafe::{write_zip, EntryPath, ZipError};
use tempfile::NamedTempFile;

/// Names skipped wherever they appear, in both modes.
const ALWAYS_SKIPPED: [&str; 5] = [".git", ".slipway", ".DS_Store", ".gitignore", IGNORE_FILE];
/// Skipped in source deploys only.
const SOURCE_SKIPPED: [&str; 1] = ["node_modules"];
/// slipway's own ignore file, honoured in both modes.
const IGNORE_FILE: &str = ".slipwayignore";

/// `.env`, `.env.production`, `.env.local`, ...; `.envrc` is not one of them.
fn is_env_file(name: &str) -> bool {
    name == ".env" || name.starts_with(".env.")
}

/// `.env.local`, `.env.production.local`: one machine's secrets, never meant to leave it.
fn is_local_env_file(name: &str) -> bool {
    is_env_file(name) && (name == ".env.local" || name.ends_with(".local"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contents {
    /// Source for the pipeline to build.
    Source,
    /// Built output to publish as it is.
    Prebuilt,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot walk {path}")]
    Walk {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("{0} has a name that is not UTF-8; zip entry names must be")]
    NonUtf8Name(PathBuf),
    #[error("{path} cannot be a zip entry")]
    EntryName {
        path: PathBuf,
        #[source]
        source: ZipError,
    },
    #[error("{0} holds no files to deploy (check its .gitignore and .slipwayignore files)")]
    Empty(PathBuf),
    #[error("cannot create the temporary zip")]
    TempFile(#[source] std::io::Error),
    #[error("cannot write the zip")]
    Write(#[source] ZipError),
}

/// The files under `dir` that a deploy uploads, as (entry name, file on disk), sorted by
/// entry name.
pub fn collect(dir: &Path, contents: Contents) -> Result<Vec<(EntryPath, PathBuf)>, ArchiveError> {
    if !dir.is_dir() {
        return Err(ArchiveError::NotADirectory(dir.to_owned()));
    }
    let source = contents == Contents::Source;
    let mut walk = WalkBuilder::new(dir);
    walk.hidden(false)
        .follow_links(false)
        .git_global(false)
        // Inside the directory in both modes; parents' only for source.
        .git_ignore(true)
        .parents(source)
        .git_exclude(source)
        .ignore(source)
        .require_git(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .filter_entry(move |entry| {
            let name = entry.file_name();
            let skipped = ALWAYS_SKIPPED.iter().any(|s| name == *s)
                || name
                    .to_str()
                    .is_some_and(|n| is_local_env_file(n) || (!source && is_env_file(n)))
                || (source && SOURCE_SKIPPED.iter().any(|s| name == *s));
            // The root is what the user named; only what is inside it is filtered.
            entry.depth() == 0 || !skipped
        });

    let mut files = Vec::new();
    for entry in walk.build() {
        let entry = entry.map_err(|source| ArchiveError::Walk {
            path: dir.to_owned(),
            source,
        })?;
        let Some(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_symlink() {
            tracing::warn!(path = %entry.path().display(), "skipping symbolic link");
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let name = entry_name(dir, entry.path())?;
        let entry_path = EntryPath::parse(&name).map_err(|source| ArchiveError::EntryName {
            path: entry.path().to_owned(),
            source,
        })?;
        files.push((entry_path, entry.into_path()));
    }
    if files.is_empty() {
        return Err(ArchiveError::Empty(dir.to_owned()));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    tracing::debug!(dir = %dir.display(), files = files.len(), ?contents, "collected files");
    Ok(files)
}

/// `path` relative to `root`, with `/` between components whatever the platform.
fn entry_name(root: &Path, path: &Path) -> Result<String, ArchiveError> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let parts = relative
        .iter()
        .map(|part| part.to_str())
        .collect::<Option<Vec<&str>>>()
        .ok_or_else(|| ArchiveError::NonUtf8Name(path.to_owned()))?;
    Ok(parts.join("/"))
}

/// A zip of a directory in a temporary file, deleted when this is dropped.
pub struct ZippedDir {
    pub file: NamedTempFile,
    pub entries: u64,
    /// The files' total size before compression.
    pub content_bytes: u64,
    /// The zip's size on disk.
    pub zip_bytes: u64,
}

pub fn zip_dir(dir: &Path, contents: Contents) -> Result<ZippedDir, ArchiveError> {
    let files = collect(dir, contents)?;
    let file = tempfile::Builder::new()
        .prefix("slipway-deploy-")
        .suffix(".zip")
        .tempfile()
        .map_err(ArchiveError::TempFile)?;
    let out = BufWriter::new(file.reopen().map_err(ArchiveError::TempFile)?);
    let (entries, content_bytes) = write_zip(out, files).map_err(ArchiveError::Write)?;
    let zip_bytes = File::open(file.path())
        .and_then(|f| f.metadata())
        .map_err(ArchiveError::TempFile)?
        .len();
    Ok(ZippedDir {
        file,
        entries,
        content_bytes,
        zip_bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let full = dir.path().join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, body).unwrap();
        }
        dir
    }

    fn names(dir: &Path, contents: Contents) -> Vec<String> {
        collect(dir, contents)
            .unwrap()
            .into_iter()
            .map(|(entry, _)| entry.as_str().to_owned())
            .collect()
    }

    #[test]
    fn source_deploys_honour_root_and_nested_gitignores_outside_a_repository() {
        let dir = tree(&[
            (".gitignore", "*.log\n/build/\n!keep.log\n"),
            ("index.html", "<h1>hi</h1>"),
            ("debug.log", "noise"),
            ("keep.log", "wanted"),
            ("build/out.js", "generated"),
            ("src/build/partial.js", "not the root build dir"),
            ("src/.gitignore", "secret.txt\ncache/\n"),
            ("src/secret.txt", "x"),
            ("src/cache/a.bin", "x"),
            ("src/app/main.js", "code"),
            ("src/app/deep/.gitignore", "*.tmp\n"),
            ("src/app/deep/x.tmp", "x"),
            ("src/app/deep/x.js", "x"),
            ("other/secret.txt", "only ignored under src/"),
        ]);
        assert_eq!(
            names(dir.path(), Contents::Source),
            [
                "index.html",
                "keep.log",
                "other/secret.txt",
                "src/app/deep/x.js",
                "src/app/main.js",
                "src/build/partial.js",
            ]
        );
    }

    #[test]
    fn version_control_state_and_dependencies_stay_out_of_source_deploys() {
        let dir = tree(&[
            ("package.json", "{}"),
            (".git/HEAD", "ref: refs/heads/main"),
            ("vendor/.git", "gitdir: ../.git/modules/vendor"),
            (".slipway/state.db", "sqlite"),
            ("node_modules/left-pad/index.js", "x"),
            ("packages/ui/node_modules/react/index.js", "x"),
            (".DS_Store", "x"),
            (".well-known/security.txt", "Contact: me"),
            (".npmrc", "registry=x"),
        ]);
        assert_eq!(
            names(dir.path(), Contents::Source),
            [".npmrc", ".well-known/security.txt", "package.json"]
        );
    }

    #[test]
    fn prebuilt_deploys_keep_dependencies_but_never_repository_state() {
        let dir = tree(&[
            ("index.html", "x"),
            ("node_modules/lib/index.js", "vendored on purpose"),
            (".git/HEAD", "x"),
            (".slipway/state.db", "x"),
            (".DS_Store", "x"),
            (".well-known/security.txt", "Contact: me"),
        ]);
        assert_eq!(
            names(dir.path(), Contents::Prebuilt),
            [
                ".well-known/security.txt",
                "index.html",
                "node_modules/lib/index.js"
            ]
        );
    }

    #[test]
    fn env_files_and_ignore_files_are_never_published() {
        let files = [
            (".env", "SECRET=1"),
            (".env.production", "VITE_API=https://api"),
            ("config/.env.local", "SECRET=3"),
            (".env.production.local", "SECRET=4"),
            (".envrc", "use nix"),
            (".gitignore", "*.log\n"),
            (".slipwayignore", "drafts/\n"),
            ("sub/.gitignore", "*.tmp\n"),
            ("index.html", "x"),
        ];
        let dir = tree(&files);
        assert_eq!(
            names(dir.path(), Contents::Prebuilt),
            [".envrc", "index.html"]
        );
        // The build reads committed build-time env files; local ones never leave the machine.
        assert_eq!(
            names(dir.path(), Contents::Source),
            [".env", ".env.production", ".envrc", "index.html"]
        );
    }

    #[test]
    fn prebuilt_deploys_honour_gitignores_inside_the_directory_only() {
        let repo = tree(&[
            (".gitignore", "dist/\n*.map\n"),
            ("dist/index.html", "x"),
            ("dist/app.js", "x"),
            ("dist/app.js.map", "only ignored by the repository"),
            ("dist/assets/.gitignore", "secret.txt\n"),
            ("dist/assets/secret.txt", "x"),
            ("dist/assets/logo.svg", "x"),
            ("dist/secret.txt", "only ignored under assets/"),
        ]);
        assert_eq!(
            names(&repo.path().join("dist"), Contents::Prebuilt),
            [
                "app.js",
                "app.js.map",
                "assets/logo.svg",
                "index.html",
                "secret.txt"
            ]
        );
    }

    #[test]
    fn slipwayignore_applies_in_both_modes_and_overrides_gitignore() {
        let files = [
            (".gitignore", "*.log\n"),
            (".slipwayignore", "drafts/\n*.psd\n!keep.log\n"),
            ("docs/.slipwayignore", "internal.html\n"),
            ("index.html", "x"),
            ("drafts/post.html", "x"),
            ("art/cover.psd", "x"),
            ("debug.log", "x"),
            ("keep.log", "x"),
            ("docs/internal.html", "x"),
            ("docs/public.html", "x"),
        ];
        for contents in [Contents::Source, Contents::Prebuilt] {
            let dir = tree(&files);
            assert_eq!(
                names(dir.path(), contents),
                ["docs/public.html", "index.html", "keep.log"],
                "{contents:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_skipped_not_followed() {
        let outside = tree(&[("id_rsa", "private")]);
        let dir = tree(&[("index.html", "x")]);
        std::os::unix::fs::symlink(outside.path().join("id_rsa"), dir.path().join("key")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked-dir")).unwrap();
        assert_eq!(names(dir.path(), Contents::Prebuilt), ["index.html"]);
    }

    #[test]
    fn nothing_to_deploy_and_non_directories_are_errors() {
        let dir = tree(&[(".gitignore", "*\n"), ("index.html", "x")]);
        for contents in [Contents::Source, Contents::Prebuilt] {
            assert!(matches!(
                collect(dir.path(), contents),
                Err(ArchiveError::Empty(_))
            ));
        }
        let file = dir.path().join(".gitignore");
        assert!(matches!(
            collect(&file, Contents::Source),
            Err(ArchiveError::NotADirectory(_))
        ));
    }

    #[test]
    fn the_zip_holds_exactly_the_collected_files_with_slash_separated_names() {
        let dir = tree(&[
            (".gitignore", "*.log\n"),
            ("index.html", "<h1>home</h1>"),
            ("docs/guide/intro.html", "<p>intro</p>"),
            ("x.log", "ignored"),
        ]);
        let zipped = zip_dir(dir.path(), Contents::Source).unwrap();
        assert_eq!(zipped.entries, 2);
        assert_eq!(
            zipped.content_bytes,
            ("<h1>home</h1>".len() + "<p>intro</p>".len()) as u64
        );
        let bytes = std::fs::read(zipped.file.path()).unwrap();
        assert_eq!(bytes.len() as u64, zipped.zip_bytes);

        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut found = Vec::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).unwrap();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            found.push((entry.name().unwrap().into_owned(), body));
        }
        found.sort();
        assert_eq!(
            found,
            [
                (
                    "docs/guide/intro.html".to_owned(),
                    "<p>intro</p>".to_owned()
                ),
                ("index.html".to_owned(), "<h1>home</h1>".to_owned()),
            ]
        );
    }
}
