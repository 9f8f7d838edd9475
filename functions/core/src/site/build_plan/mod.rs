//! Deciding whether a source needs a build, how to build it, and the CodeBuild buildspec that
//! runs the build (the local builder runs the very same buildspec).
//!
//! [`decide`] reads an optional `slipway.toml` at the source root. Every `[build]` key is
//! optional:
//! - with `command`, the plan is [`Framework::Custom`]. `install` defaults to the package
//!   manager's install when there is a `package.json` (else nothing), and `output_dir` to the
//!   detected framework's (required when there is no `package.json`);
//! - without `command`, the framework is detected from `package.json` (see `detect`), and
//!   `install` / `output_dir` override what detection chose.
//!
//! For a prebuilt upload only `spa` and `clean_urls` matter.
//!
//! No `slipway.toml` `[build].command` and no `package.json`: the files are the site (prebuilt).
//!
//! - `config`: reading `slipway.toml` (its format).
//! - `detect`: the framework, output directory and package manager from `package.json`.
//! - `buildspec`: writing and parsing CodeBuild buildspecs.

mod buildspec;
mod config;
mod detect;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use buildspec::{parse_buildspec, Buildspec, Phase, PHASES};
use config::{invalid_config, Config};
use detect::{detect, PackageJson, PackageManager};

use crate::names::RootDir;

pub const CONFIG_FILE: &str = "slipway.toml";
pub const PACKAGE_JSON: &str = "package.json";
const ANGULAR_JSON: &str = "angular.json";

/// Every file [`decide`] may read: what a reader without a checkout (a commit on GitHub)
/// fetches up front.
pub const DETECTION_FILES: [&str; 3] = [CONFIG_FILE, PACKAGE_JSON, ANGULAR_JSON];

/// The Node.js major version JS builds run on (CodeBuild `runtime-versions`).
pub const NODE_MAJOR: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("slipway.toml is invalid: {reason}")]
    InvalidConfig { reason: String },
    #[error("package.json is invalid: {reason}")]
    InvalidPackageJson { reason: String },
    #[error("package.json has no \"build\" script. Add one under \"scripts\" (for example \"build\": \"vite build\"), set `command` under [build] in slipway.toml, or deploy the files as prebuilt output")]
    NoBuildScript,
    #[error("output directory `{dir}` must be a relative path inside the project (no `..`, no leading `/`)")]
    UnsafeOutputDir { dir: String },
    #[error("buildspec is invalid: {reason}")]
    InvalidBuildspec { reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    Vite,
    CreateReactApp,
    Vue,
    Angular,
    SvelteKit,
    Astro,
    NextExport,
    /// An npm build script with no framework slipway recognises.
    Npm,
    /// The build command comes from `slipway.toml`.
    Custom,
    /// No build: the upload is the site.
    PlainHtml,
}

impl Framework {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vite => "vite",
            Self::CreateReactApp => "create-react-app",
            Self::Vue => "vue",
            Self::Angular => "angular",
            Self::SvelteKit => "sveltekit",
            Self::Astro => "astro",
            Self::NextExport => "next-export",
            Self::Npm => "npm",
            Self::Custom => "custom",
            Self::PlainHtml => "plain-html",
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    pub framework: Framework,
    pub install: Vec<String>,
    pub build: Vec<String>,
    /// Relative to the source root, validated: no `..`, no leading `/`, no trailing `/`.
    pub output_dir: String,
    pub spa: Option<bool>,
    pub clean_urls: Option<bool>,
    /// Node.js major version to build with; `None` for a custom build without `package.json`.
    pub node_major: Option<u32>,
    /// The app's directory in a monorepo checkout: commands run there, and `output_dir` is
    /// relative to it.
    #[serde(default)]
    pub root: Option<RootDir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BuildDecision {
    Prebuilt {
        spa: Option<bool>,
        clean_urls: Option<bool>,
    },
    Build(BuildPlan),
}

impl BuildDecision {
    pub fn framework(&self) -> Framework {
        match self {
            Self::Prebuilt { .. } => Framework::PlainHtml,
            Self::Build(plan) => plan.framework,
        }
    }
}

/// Decides how to turn a source into a site. `files` are the source's paths relative to its
/// root; `read` returns a small file's contents (slipway.toml, package.json, angular.json).
pub fn decide(
    files: &[&str],
    mut read: impl FnMut(&str) -> Option<Vec<u8>>,
    prebuilt: bool,
) -> Result<BuildDecision, PlanError> {
    let has = |name: &str| files.contains(&name);
    let config = if has(CONFIG_FILE) {
        let bytes =
            read(CONFIG_FILE).ok_or_else(|| invalid_config("the file could not be read"))?;
        Some(Config::parse(&bytes)?)
    } else {
        None
    };
    let (spa, clean_urls) = config
        .as_ref()
        .map_or((None, None), |c| (c.flags.spa, c.flags.clean_urls));
    if prebuilt {
        return Ok(BuildDecision::Prebuilt { spa, clean_urls });
    }

    let package = if has(PACKAGE_JSON) {
        let bytes = read(PACKAGE_JSON).ok_or_else(|| PlanError::InvalidPackageJson {
            reason: "the file could not be read".to_owned(),
        })?;
        Some(PackageJson::parse(&bytes)?)
    } else {
        None
    };
    let config = config.filter(|c| c.has_build);
    let Some(package) = package else {
        let Some(config) = config else {
            return Ok(BuildDecision::Prebuilt { spa, clean_urls });
        };
        // A build with no package.json: everything must come from slipway.toml.
        let command = config.command.ok_or_else(|| {
            invalid_config(
                "`build.command` is required: there is no package.json to take a build script from",
            )
        })?;
        let output_dir = config.output_dir.ok_or_else(|| {
            invalid_config("`build.output_dir` is required when there is no package.json")
        })?;
        return Ok(finish(BuildPlan {
            framework: Framework::Custom,
            install: config.install.unwrap_or_default(),
            build: command,
            output_dir,
            spa,
            clean_urls,
            node_major: None,
            root: None,
        }));
    };

    let angular_json = if package.depends_on("@angular/core") && has(ANGULAR_JSON) {
        read(ANGULAR_JSON)
    } else {
        None
    };
    let detected = detect(&package, angular_json)?;
    let manager = PackageManager::detect(files);
    let (install, command, configured_dir) = match config {
        Some(c) => (c.install, c.command, c.output_dir),
        None => (None, None, None),
    };
    let framework = match &command {
        Some(_) => Framework::Custom,
        None if package.has_build_script() => detected.framework,
        None => return Err(PlanError::NoBuildScript),
    };
    Ok(finish(BuildPlan {
        framework,
        install: install.unwrap_or_else(|| manager.install()),
        build: command.unwrap_or_else(|| vec![manager.run_build()]),
        output_dir: configured_dir.unwrap_or(detected.output_dir),
        spa: spa.or(detected.spa),
        clean_urls: clean_urls.or(detected.clean_urls),
        node_major: Some(NODE_MAJOR),
        root: None,
    }))
}

fn finish(plan: BuildPlan) -> BuildDecision {
    tracing::info!(
        framework = %plan.framework,
        output_dir = %plan.output_dir,
        install = ?plan.install,
        build = ?plan.build,
        "build plan decided"
    );
    BuildDecision::Build(plan)
}

/// A buildspec a builder cannot run.
impl From<PlanError> for crate::ports::BuildError {
    fn from(e: PlanError) -> Self {
        Self::Buildspec(Box::new(e))
    }
}

/// A source tree and `package.json` builder shared by every submodule's tests.
#[cfg(test)]
mod test_support {
    use std::collections::HashMap;

    use super::*;

    /// A source tree in memory: paths and contents.
    pub(super) struct Source(HashMap<&'static str, Vec<u8>>);

    impl Source {
        pub(super) fn new(files: &[(&'static str, &str)]) -> Self {
            Self(
                files
                    .iter()
                    .map(|(p, c)| (*p, c.as_bytes().to_vec()))
                    .collect(),
            )
        }

        pub(super) fn decide(&self, prebuilt: bool) -> Result<BuildDecision, PlanError> {
            let files: Vec<&str> = self.0.keys().copied().collect();
            decide(&files, |p| self.0.get(p).cloned(), prebuilt)
        }

        pub(super) fn plan(&self) -> BuildPlan {
            match self.decide(false) {
                Ok(BuildDecision::Build(plan)) => plan,
                other => panic!("expected a build, got {other:?}"),
            }
        }
    }

    pub(super) fn package(deps: &str) -> String {
        format!(r#"{{"name":"app","scripts":{{"build":"x build"}},"dependencies":{{{deps}}}}}"#)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{package, Source};
    use super::*;

    #[test]
    fn plain_static_files_are_prebuilt() {
        let source = Source::new(&[("index.html", "<h1>hi</h1>"), ("style.css", "")]);
        assert_eq!(
            source.decide(false).unwrap(),
            BuildDecision::Prebuilt {
                spa: None,
                clean_urls: None
            }
        );
        assert_eq!(
            source.decide(false).unwrap().framework(),
            Framework::PlainHtml
        );
    }

    #[test]
    fn a_package_json_without_a_build_script_says_what_to_add() {
        let pkg = r#"{"dependencies":{"vite":"5"},"scripts":{"dev":"vite"}}"#;
        let err = Source::new(&[("package.json", pkg)])
            .decide(false)
            .unwrap_err();
        assert!(matches!(err, PlanError::NoBuildScript));
        let message = err.to_string();
        assert!(message.contains("\"build\""), "{message}");
        assert!(message.contains("slipway.toml"), "{message}");
        // Prebuilt uploads don't need one.
        assert!(matches!(
            Source::new(&[("package.json", pkg)]).decide(true).unwrap(),
            BuildDecision::Prebuilt { .. }
        ));
    }

    #[test]
    fn slipway_toml_build_command_wins_over_detection() {
        let pkg = package(r#""vite":"5""#);
        let toml = r#"
spa = false

[build]
command = ["npm run lint", "npm run build:prod"]
output_dir = "./public/"
"#;
        let plan = Source::new(&[
            ("package.json", pkg.as_str()),
            ("yarn.lock", ""),
            ("slipway.toml", toml),
        ])
        .plan();
        assert_eq!(plan.framework, Framework::Custom);
        assert_eq!(plan.build, ["npm run lint", "npm run build:prod"]);
        assert_eq!(
            plan.install.last().unwrap(),
            "yarn install --frozen-lockfile"
        );
        assert_eq!(plan.output_dir, "public");
        assert_eq!(
            plan.spa,
            Some(false),
            "slipway.toml overrides Vite's default"
        );
        assert_eq!(plan.node_major, Some(NODE_MAJOR));
    }

    #[test]
    fn slipway_toml_can_tune_a_detected_build() {
        let pkg = package(r#""react-scripts":"5""#);
        let toml =
            "[build]\ninstall = \"npm ci --legacy-peer-deps\"\n\n[site]\nclean_urls = true\n";
        let plan = Source::new(&[("package.json", pkg.as_str()), ("slipway.toml", toml)]).plan();
        assert_eq!(plan.framework, Framework::CreateReactApp);
        assert_eq!(plan.install, ["npm ci --legacy-peer-deps"]);
        assert_eq!(plan.build, ["npm run build"]);
        assert_eq!(plan.output_dir, "build");
        assert_eq!((plan.spa, plan.clean_urls), (Some(true), Some(true)));
    }

    #[test]
    fn a_custom_build_without_package_json_runs_no_node() {
        let toml = "[build]\ncommand = \"hugo --minify\"\noutput_dir = \"public\"\n";
        let plan = Source::new(&[("slipway.toml", toml), ("content/_index.md", "")]).plan();
        assert_eq!(plan.framework, Framework::Custom);
        assert!(plan.install.is_empty());
        assert_eq!(plan.node_major, None);
        let spec = plan.buildspec_yaml();
        assert!(!spec.contains("runtime-versions"), "{spec}");
        assert!(!spec.contains("install"), "{spec}");
    }

    #[test]
    fn prebuilt_reads_only_routing_flags() {
        let toml = "[site]\nspa = true\n\n[build]\ncommand = \"make\"\noutput_dir = \"out\"\n";
        let decision = Source::new(&[("slipway.toml", toml), ("package.json", "{}")]).decide(true);
        assert_eq!(
            decision.unwrap(),
            BuildDecision::Prebuilt {
                spa: Some(true),
                clean_urls: None
            }
        );
        let flags_only = Source::new(&[("slipway.toml", "clean_urls = true"), ("index.html", "")]);
        assert_eq!(
            flags_only.decide(false).unwrap(),
            BuildDecision::Prebuilt {
                spa: None,
                clean_urls: Some(true)
            }
        );
    }
}
