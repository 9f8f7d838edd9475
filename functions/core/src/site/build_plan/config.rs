//! Reading `slipway.toml`.
//!
//! Optional, at the source root. Unknown keys are errors, so typos don't pass silently.
//!
//! ```toml
//! spa = true            # extensionless paths that match no file serve /index.html
//! clean_urls = true     # /about serves /about.html or /about/index.html
//!
//! [build]
//! install = "npm ci"              # or a list of commands; [] for none
//! command = "npm run build:prod"  # or a list of commands
//! output_dir = "dist"             # relative to the source root
//! ```
//!
//! `spa` and `clean_urls` may instead sit in a `[site]` table (not both places at once).

use std::fmt;

use serde::de;
use serde::{Deserialize, Deserializer};

use super::PlanError;
use crate::site::zipsafe::EntryPath;

/// One string or a list of them, as `install` and `command` accept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Commands(Vec<String>);

impl<'de> Deserialize<'de> for Commands {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Commands;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command string or a list of command strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Commands, E> {
                Ok(Commands(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Commands, A::Error> {
                let mut commands = Vec::new();
                while let Some(command) = seq.next_element::<String>()? {
                    commands.push(command);
                }
                Ok(Commands(commands))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SiteFlags {
    pub(super) spa: Option<bool>,
    pub(super) clean_urls: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildSection {
    install: Option<Commands>,
    command: Option<Commands>,
    output_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    spa: Option<bool>,
    clean_urls: Option<bool>,
    site: Option<SiteFlags>,
    build: Option<BuildSection>,
}

/// `slipway.toml`, checked.
#[derive(Debug)]
pub(super) struct Config {
    pub(super) flags: SiteFlags,
    pub(super) install: Option<Vec<String>>,
    pub(super) command: Option<Vec<String>>,
    pub(super) output_dir: Option<String>,
    pub(super) has_build: bool,
}

pub(super) fn invalid_config(reason: impl Into<String>) -> PlanError {
    PlanError::InvalidConfig {
        reason: reason.into(),
    }
}

pub(super) fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

impl Config {
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
        let text = std::str::from_utf8(strip_bom(bytes))
            .map_err(|_| invalid_config("the file is not valid UTF-8"))?;
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let reason = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count();
                    let content = text.lines().nth(line).unwrap_or("").trim();
                    format!("line {}: {} (`{content}`)", line + 1, e.message())
                }
                None => e.message().to_owned(),
            };
            invalid_config(reason)
        })?;

        let site = raw.site.unwrap_or_default();
        let pick = |top: Option<bool>, nested: Option<bool>, key: &str| match (top, nested) {
            (Some(_), Some(_)) => Err(invalid_config(format!(
                "`{key}` is set both at the top level and under [site]; keep one"
            ))),
            (top, nested) => Ok(top.or(nested)),
        };
        let flags = SiteFlags {
            spa: pick(raw.spa, site.spa, "spa")?,
            clean_urls: pick(raw.clean_urls, site.clean_urls, "clean_urls")?,
        };

        let has_build = raw.build.is_some();
        let (install, command, output_dir) = match raw.build {
            None => (None, None, None),
            Some(build) => {
                let install = build
                    .install
                    .map(|c| checked_commands(c, "build.install", true))
                    .transpose()?;
                let command = build
                    .command
                    .map(|c| checked_commands(c, "build.command", false))
                    .transpose()?;
                let output_dir = build.output_dir.as_deref().map(output_dir).transpose()?;
                (install, command, output_dir)
            }
        };
        Ok(Self {
            flags,
            install,
            command,
            output_dir,
            has_build,
        })
    }
}

fn checked_commands(
    commands: Commands,
    key: &str,
    may_be_empty: bool,
) -> Result<Vec<String>, PlanError> {
    if commands.0.is_empty() && !may_be_empty {
        return Err(invalid_config(format!(
            "`{key}` needs at least one command"
        )));
    }
    if commands.0.iter().any(|c| c.trim().is_empty()) {
        return Err(invalid_config(format!("`{key}` contains an empty command")));
    }
    Ok(commands.0)
}

/// Normalises (`./dist/` → `dist`) and checks an output directory.
pub(super) fn output_dir(raw: &str) -> Result<String, PlanError> {
    let trimmed = raw.trim();
    let without_dot = trimmed.strip_prefix("./").unwrap_or(trimmed);
    let normalised = without_dot.strip_suffix('/').unwrap_or(without_dot);
    EntryPath::parse(normalised)
        .map(|path| path.as_str().to_owned())
        .map_err(|_| PlanError::UnsafeOutputDir {
            dir: raw.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::build_plan::decide;
    use crate::site::build_plan::test_support::{package, Source};

    fn config_error(toml: &str) -> String {
        let pkg = package(r#""vite":"5""#);
        match Source::new(&[("slipway.toml", toml), ("package.json", &pkg)]).decide(false) {
            Err(PlanError::InvalidConfig { reason }) => reason,
            other => panic!("{toml:?}: expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn config_errors_name_the_field() {
        let reason = config_error("[build]\noutputdir = \"dist\"\n");
        assert!(
            reason.contains("outputdir") && reason.contains("line 2"),
            "{reason}"
        );
        let reason = config_error("spa = \"yes\"\n");
        assert!(
            reason.contains("spa") && reason.contains("boolean"),
            "{reason}"
        );
        let reason = config_error("[build]\ncommand = 3\n");
        assert!(reason.contains("command"), "{reason}");
        let reason = config_error("[build]\ncommand = []\n");
        assert!(reason.contains("build.command"), "{reason}");
        let reason = config_error("[build]\ncommand = [\"  \"]\n");
        assert!(reason.contains("empty command"), "{reason}");
        let reason = config_error("spa = true\n[site]\nspa = false\n");
        assert!(
            reason.contains("spa") && reason.contains("[site]"),
            "{reason}"
        );
        let reason = config_error("[sites]\nspa = true\n");
        assert!(reason.contains("sites"), "{reason}");
        let reason = config_error("[build\n");
        assert!(reason.contains("line 1"), "{reason}");

        let no_command =
            Source::new(&[("slipway.toml", "[build]\noutput_dir = \"x\"")]).decide(false);
        assert!(
            matches!(&no_command, Err(PlanError::InvalidConfig { reason }) if reason.contains("build.command")),
            "{no_command:?}"
        );
        let no_dir = Source::new(&[("slipway.toml", "[build]\ncommand = \"make\"")]).decide(false);
        assert!(
            matches!(&no_dir, Err(PlanError::InvalidConfig { reason }) if reason.contains("build.output_dir")),
            "{no_dir:?}"
        );
        let unreadable = decide(&["slipway.toml"], |_| None, false);
        assert!(matches!(unreadable, Err(PlanError::InvalidConfig { .. })));
    }

    #[test]
    fn unsafe_output_dirs_are_refused() {
        for dir in [
            "../dist",
            "/var/www",
            "a/../../b",
            "",
            ".",
            "C:\\out",
            "dist\\x",
        ] {
            let toml = format!("[build]\ncommand = \"make\"\noutput_dir = {dir:?}\n");
            let err = Source::new(&[("slipway.toml", &toml)])
                .decide(false)
                .unwrap_err();
            assert!(
                matches!(err, PlanError::UnsafeOutputDir { .. }),
                "{dir:?}: {err:?}"
            );
        }
    }
}
