//! Content types and cache policy for published files.
//!
//! Every version lives under its own prefix, so a URL only ever serves one body per version.
//! Still, most URLs (`/`, `/about`, `/logo.png`) survive across versions, and browsers must
//! revalidate them to see a new deploy. Only files whose *name* changes with their content
//! (build tools' fingerprinted assets) may be cached forever.
//!
//! ## What counts as fingerprinted
//!
//! The file name is split on `.`; the last piece is the extension. A *candidate* is
//! - any piece after the first (`main.3f2a9c1b.js`, `787.28cb0dcd.chunk.js`),
//! - in any piece, the text after its last `-` (`index-5e1a2b3c.js`), and its last 8 characters
//!   when a `-` precedes them (`index-B-x_9Qz1.js`: Rollup's alphabet includes `-` and `_`),
//! - under `_next/static/` or `_astro/`, the first piece too (`_next/static/css/a1b2c3d4e5f6a7b8.css`).
//!
//! A candidate is a content hash when it contains at least one digit and one letter, switches
//! between letters and digits at least twice, and is one of:
//! - 8 to 64 lowercase hex characters (webpack, CRA, Angular ≤ 16, Next, Parcel, Gatsby);
//! - exactly 8 of `A-Z0-9` (esbuild, Angular ≥ 17: `chunk-5GQ2OLKB.js`);
//! - exactly 8 of `A-Za-z0-9_-` with lower and upper case, an upper-case letter after the first
//!   character (Vite ≥ 5, Astro, SvelteKit: `index-BdK3x9Qz.js`).
//!
//! Those rules keep human names such as `jquery-3.7.1.min.js`, `readme-overview.js`,
//! `banner-1200x628.png`, `icon-SIZE1024.png` or `case-iPhone12.png` out. The price is that
//! some real hashes miss (an esbuild hash without a digit, `polyfills-SCHOHYNV.js`): those files
//! revalidate, which is merely slower, whereas a false positive would pin a stale file in
//! browsers for a year.
//!
//! SvelteKit's `_app/immutable/` and Next's `_next/static/` are immutable as whole folders:
//! both frameworks promise that every file there is content-addressed (Next's build id is a
//! folder name), and serve them as immutable themselves.

use crate::site::build_plan::Framework;

/// For files whose name changes whenever their content does.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For everything else: browsers may keep a copy but must check it on every use.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";

/// The `Content-Type` to store a published file with, from its extension.
pub fn content_type_for(path: &str) -> String {
    let name = file_name(path);
    let extension = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream".to_owned(),
    };
    let essence = match extension.as_str() {
        "js" | "mjs" | "cjs" => "text/javascript".to_owned(),
        "map" => "application/json".to_owned(),
        "wasm" => "application/wasm".to_owned(),
        "webmanifest" => "application/manifest+json".to_owned(),
        "avif" => "image/avif".to_owned(),
        "woff2" => "font/woff2".to_owned(),
        "woff" => "font/woff".to_owned(),
        "otf" => "font/otf".to_owned(),
        "ttf" => "font/ttf".to_owned(),
        other => match mime_guess::from_ext(other).first() {
            Some(mime) => mime.essence_str().to_owned(),
            None => return "application/octet-stream".to_owned(),
        },
    };
    if is_text(&essence) {
        format!("{essence}; charset=utf-8")
    } else {
        essence
    }
}

fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/javascript" | "application/json" | "application/xml"
        )
}

/// The `Cache-Control` to store a published file with: HTML always revalidates, fingerprinted
/// assets are immutable, everything else revalidates.
pub fn cache_control_for(path: &str) -> &'static str {
    if is_html(path) {
        REVALIDATE
    } else if is_fingerprinted(path) {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

/// Like [`cache_control_for`], knowing which framework built the files: each one's output
/// folder for hashed assets is immutable by that framework's contract, which also catches
/// hashes the name-only rule misses (a Vite hash need not contain a digit).
pub fn cache_control_for_build(path: &str, framework: Option<Framework>) -> &'static str {
    if !is_html(path) && framework.is_some_and(|f| hashed_by(f, path)) {
        IMMUTABLE
    } else {
        cache_control_for(path)
    }
}

/// Whether `path` (relative to the output root) is where `framework` puts content-hashed files.
fn hashed_by(framework: Framework, path: &str) -> bool {
    match framework {
        // `build.assetsDir` with Vite's default `[name]-[hash][extname]`; files from `public/`
        // keep their names, so the hash shape is still required.
        Framework::Vite if path.starts_with("assets/") => {
            let name = file_name(path);
            let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
            let bytes = stem.as_bytes();
            let hash = &bytes[bytes.len().saturating_sub(8)..];
            // A word such as `settings` is all lower case; a base64url hash almost never is.
            bytes.len() > 9
                && bytes[bytes.len() - 9] == b'-'
                && hash
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
                && hash.iter().any(|b| !b.is_ascii_lowercase())
        }
        Framework::CreateReactApp => path.starts_with("static/"),
        Framework::Vue => path.starts_with("js/") || path.starts_with("css/"),
        Framework::Astro => path.starts_with("_astro/"),
        _ => false,
    }
}

fn is_html(path: &str) -> bool {
    let name = file_name(path).to_ascii_lowercase();
    name.ends_with(".html") || name.ends_with(".htm")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Folders whose every file is content-addressed by the framework's own contract.
const IMMUTABLE_DIRS: [&str; 2] = ["_app/immutable/", "_next/static/"];
/// Folders where the whole stem may be the hash.
const HASH_NAMED_DIRS: [&str; 2] = ["_next/static/", "_astro/"];

fn under(path: &str, dir: &str) -> bool {
    path.starts_with(dir) || path.contains(&format!("/{dir}"))
}

/// Whether the file's name carries a content hash (see the module docs for the exact rule).
pub fn is_fingerprinted(path: &str) -> bool {
    if IMMUTABLE_DIRS.iter().any(|dir| under(path, dir)) {
        return true;
    }
    let name = file_name(path);
    let pieces: Vec<&str> = name.split('.').collect();
    let Some((_extension, stem_pieces)) = pieces.split_last() else {
        return false;
    };
    if stem_pieces.is_empty() {
        return false;
    }
    let whole_stem_may_be_hash = HASH_NAMED_DIRS.iter().any(|dir| under(path, dir));
    stem_pieces.iter().enumerate().any(|(i, piece)| {
        if (i > 0 || whole_stem_may_be_hash) && is_hash(piece) {
            return true;
        }
        let Some((_, after_dash)) = piece.rsplit_once('-') else {
            return false;
        };
        if is_hash(after_dash) {
            return true;
        }
        let bytes = piece.as_bytes();
        bytes.len() >= 10 && bytes[bytes.len() - 9] == b'-' && is_hash(&piece[piece.len() - 8..])
    })
}

fn is_hash(candidate: &str) -> bool {
    let bytes = candidate.as_bytes();
    let has_digit = bytes.iter().any(u8::is_ascii_digit);
    let has_letter = bytes.iter().any(u8::is_ascii_alphabetic);
    if !has_digit || !has_letter || letter_digit_switches(bytes) < 2 {
        return false;
    }
    let lower_hex = (8..=64).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    let base32 = bytes.len() == 8
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    let base64url = bytes.len() == 8
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        && bytes.iter().any(u8::is_ascii_lowercase)
        && bytes[1..].iter().any(u8::is_ascii_uppercase);
    lower_hex || base32 || base64url
}

/// How often the alphanumeric characters switch between letters and digits.
fn letter_digit_switches(bytes: &[u8]) -> usize {
    let kinds: Vec<bool> = bytes
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::is_ascii_digit)
        .collect();
    kinds.windows(2).filter(|pair| pair[0] != pair[1]).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn framework_output_folders_are_immutable_even_when_the_hash_has_no_digit() {
        use super::{cache_control_for_build, IMMUTABLE, REVALIDATE};
        use crate::site::build_plan::Framework;
        let vite = Some(Framework::Vite);
        // Real Vite 8 names the name-only rule misses: no digit in the hash.
        assert_eq!(
            cache_control_for_build("assets/index-FYUYwCTc.js", vite),
            IMMUTABLE
        );
        assert_eq!(
            cache_control_for_build("assets/index-bT5i_gCW.css", vite),
            IMMUTABLE
        );
        // Copied from public/: keeps its name, so it revalidates.
        assert_eq!(cache_control_for_build("assets/logo.png", vite), REVALIDATE);
        assert_eq!(
            cache_control_for_build("assets/icon-settings.svg", vite),
            REVALIDATE
        );
        assert_eq!(cache_control_for_build("favicon.svg", vite), REVALIDATE);
        assert_eq!(cache_control_for_build("index.html", vite), REVALIDATE);
        assert_eq!(
            cache_control_for_build("static/js/main.js", Some(Framework::CreateReactApp)),
            IMMUTABLE
        );
        assert_eq!(
            cache_control_for_build("js/app.js", Some(Framework::Vue)),
            IMMUTABLE
        );
        assert_eq!(
            cache_control_for_build("_astro/client.Cq3x.js", Some(Framework::Astro)),
            IMMUTABLE
        );
        // Without a known framework only the name-only rule applies.
        assert_eq!(
            cache_control_for_build("assets/index-FYUYwCTc.js", None),
            REVALIDATE
        );
    }

    use super::*;

    #[test]
    fn content_types_cover_web_assets() {
        for (path, expected) in [
            ("index.html", "text/html; charset=utf-8"),
            ("docs/PAGE.HTM", "text/html; charset=utf-8"),
            ("assets/index-BdK3x9Qz.js", "text/javascript; charset=utf-8"),
            ("worker.mjs", "text/javascript; charset=utf-8"),
            ("server.cjs", "text/javascript; charset=utf-8"),
            ("assets/index-D8b3Yq_-.css", "text/css; charset=utf-8"),
            ("data/site.json", "application/json; charset=utf-8"),
            (
                "assets/index-BdK3x9Qz.js.map",
                "application/json; charset=utf-8",
            ),
            (
                "manifest.webmanifest",
                "application/manifest+json; charset=utf-8",
            ),
            ("vite.svg", "image/svg+xml; charset=utf-8"),
            ("sitemap.xml", "text/xml; charset=utf-8"),
            ("feed.rss", "application/rss+xml; charset=utf-8"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("app.wasm", "application/wasm"),
            ("hero.avif", "image/avif"),
            ("logo.png", "image/png"),
            ("photo.JPG", "image/jpeg"),
            ("favicon.ico", "image/x-icon"),
            ("fonts/inter.woff2", "font/woff2"),
            ("fonts/inter.woff", "font/woff"),
            ("video.mp4", "video/mp4"),
            ("paper.pdf", "application/pdf"),
            ("CNAME", "application/octet-stream"),
            ("_redirects", "application/octet-stream"),
            (".hidden", "application/octet-stream"),
            ("blob.unknownext", "application/octet-stream"),
        ] {
            assert_eq!(content_type_for(path), expected, "{path}");
        }
    }

    #[test]
    fn fingerprinted_names_from_real_build_outputs() {
        for path in [
            // Vite 5+ (Rollup base64url hashes, which may hold `-` and `_`)
            "assets/index-BdK3x9Qz.js",
            "assets/index-D8b3Yq_-.css",
            "assets/react-CHdo91hT.svg",
            "assets/index-B-x_9Qz1.js",
            // Vite 4 (hex)
            "assets/index-5e1a2b3c.js",
            // Create React App
            "static/js/main.3f2a9c1b.js",
            "static/css/main.073c9b0a.css",
            "static/js/787.28cb0dcd.chunk.js",
            "static/media/logo.6ce24c58023cc2f8fd88fe9d219db6c6.svg",
            // Angular 16 and older
            "main.9d8b1e7c4f2a6b3d.js",
            "runtime.a1b2c3d4e5f6a7b8.js",
            "styles.ef46db3751d8e999.css",
            // Angular 17+ (esbuild)
            "main-2XBNS7OU.js",
            "chunk-5GQ2OLKB.js",
            // generic webpack
            "app.a1b2c3d4e5.css",
            // Next.js static export
            "_next/static/chunks/framework-2c79e2a64abdb08b.js",
            "_next/static/css/a1b2c3d4e5f6a7b8.css",
            "_next/static/Xb1c2dEfGhIjKlMnOpQ3s/_buildManifest.js",
            "_next/static/media/inter-latin.a1b2c3d4.woff2",
            "docs/_next/static/chunks/main-3a1b2c3d4e5f6a7b.js",
            // Astro
            "_astro/index.B1c2D3e4.css",
            "_astro/hoisted.a1b2c3d4.js",
            "_astro/Layout.astro_astro_type_script_index_0_lang.CfF4ZyKC.js",
            // SvelteKit
            "_app/immutable/entry/start.BSL4UU5_.js",
            "_app/immutable/nodes/0.Cx9tm3pN.js",
            "_app/immutable/assets/0.CH_wY5mU.css",
            // Gatsby
            "app-a1b2c3d4e5f6a7b8c9d0.js",
        ] {
            assert!(is_fingerprinted(path), "{path} should be fingerprinted");
            assert_eq!(cache_control_for(path), IMMUTABLE, "{path}");
        }
    }

    #[test]
    fn human_names_are_not_fingerprinted() {
        for path in [
            "jquery-3.7.1.min.js",
            "logo.png",
            "styles.css",
            "about.html",
            "readme-overview.js",
            "vite.svg",
            "favicon.ico",
            "robots.txt",
            "sw.js",
            "service-worker.js",
            "asset-manifest.json",
            "_app/version.json",
            "banner-1200x628.png",
            "wallpaper-1920x1080.jpg",
            "icon-SIZE1024.png",
            "case-iPhone12.png",
            "book-Chapter1.png",
            "my-component-v2-final.js",
            "photo-20240101.jpg",
            "deadbeef.js",
            "a1b2c3d4.js",
            "3rdpartylicenses.txt",
            "lodash.4.17.21.js",
            "_astro/logo.png",
            "polyfills-SCHOHYNV.js",
            "noextension",
        ] {
            assert!(
                !is_fingerprinted(path),
                "{path} should not be fingerprinted"
            );
            assert_eq!(cache_control_for(path), REVALIDATE, "{path}");
        }
    }

    #[test]
    fn html_always_revalidates_even_with_a_hash() {
        assert_eq!(cache_control_for("index.html"), REVALIDATE);
        assert_eq!(cache_control_for("page.3f2a9c1b.html"), REVALIDATE);
        assert_eq!(cache_control_for("_next/static/chunks/x.html"), REVALIDATE);
        assert_eq!(cache_control_for("_app/immutable/page.HTM"), REVALIDATE);
    }
}
