//! Deciding whether a source needs a build, how to build it, and the CodeBuild buildspec that
//! runs the build (the local builder runs the very same buildspec).
//!
//! ## `slipway.toml`
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
//! Every `[build]` key is optional:
//! - with `command`, the plan is [`Framework::Custom`]. `install` defaults to the package
//!   manager's install when there is a `package.json` (else nothing), and `output_dir` to the
//!   detected framework's (required when there is no `package.json`);
//! - without `command`, the framework is detected from `package.json` as below, and `install` /
//!   `output_dir` override what detection chose.
//!
//! For a prebuilt upload only `spa` and `clean_urls` matter.
//!
//! ## Detection from `package.json` (dependencies and devDependencies)
//!
//! | dependency                    | framework      | output                | spa  | clean URLs |
//! |-------------------------------|----------------|-----------------------|------|------------|
//! | `next`                        | NextExport     | `out`                 |      | yes        |
//! | `astro`                       | Astro          | `dist`                |      | yes        |
//! | `@sveltejs/kit`               | SvelteKit      | `build`               |      | yes        |
//! | `@angular/core`               | Angular        | from `angular.json`   | yes  |            |
//! | `vite` (React, Vue, Svelte…)  | Vite           | `dist`                | yes  |            |
//! | `react-scripts`               | CreateReactApp | `build`               | yes  |            |
//! | `@vue/cli-service`            | Vue            | `dist`                | yes  |            |
//! | anything else                 | Npm            | `dist`                |      |            |
//!
//! Astro and SvelteKit prerender `/about` as `about/index.html` or `about.html`, so they get clean
//! URLs. Angular's output is `{outputPath}/browser` for the `application` builder (Angular 17+)
//! and `{outputPath}` for the older `browser` builders, `dist/{project}/browser` when angular.json
//! does not say, and `dist` when angular.json cannot be read.
//!
//! The lockfile picks the package manager: `package-lock.json` (or `npm-shrinkwrap.json`) →
//! `npm ci`, `yarn.lock` → `yarn install --frozen-lockfile`, `pnpm-lock.yaml` →
//! `pnpm install --frozen-lockfile`, none → `npm install`. The build is `<pm> run build`.
//!
//! No `slipway.toml` `[build].command` and no `package.json`: the files are the site (prebuilt).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use crate::names::RootDir;
use crate::site::zipsafe::EntryPath;

pub const CONFIG_FILE: &str = "slipway.toml";
pub const PACKAGE_JSON: &str = "package.json";
const ANGULAR_JSON: &str = "angular.json";

/// Every file [`decide`] may read: what a reader without a checkout (a commit on GitHub)
/// fetches up front.
pub const DETECTION_FILES: [&str; 3] = [CONFIG_FILE, PACKAGE_JSON, ANGULAR_JSON];

/// Never published from a checkout: the repository's metadata and local secrets.
const CHECKOUT_EXCLUDES: [&str; 3] = [".git/**/*", "**/.env*", CONFIG_FILE];

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
struct SiteFlags {
    spa: Option<bool>,
    clean_urls: Option<bool>,
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
struct Config {
    flags: SiteFlags,
    install: Option<Vec<String>>,
    command: Option<Vec<String>>,
    output_dir: Option<String>,
    has_build: bool,
}

fn invalid_config(reason: impl Into<String>) -> PlanError {
    PlanError::InvalidConfig {
        reason: reason.into(),
    }
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

impl Config {
    fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
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
fn output_dir(raw: &str) -> Result<String, PlanError> {
    let trimmed = raw.trim();
    let without_dot = trimmed.strip_prefix("./").unwrap_or(trimmed);
    let normalised = without_dot.strip_suffix('/').unwrap_or(without_dot);
    EntryPath::parse(normalised)
        .map(|path| path.as_str().to_owned())
        .map_err(|_| PlanError::UnsafeOutputDir {
            dir: raw.to_owned(),
        })
}

#[derive(Debug, Deserialize)]
struct PackageJson {
    #[serde(default)]
    dependencies: BTreeMap<String, IgnoredAny>,
    #[serde(default, rename = "devDependencies")]
    dev_dependencies: BTreeMap<String, IgnoredAny>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
}

impl PackageJson {
    fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
        serde_json::from_slice(strip_bom(bytes)).map_err(|e| PlanError::InvalidPackageJson {
            reason: e.to_string(),
        })
    }

    fn depends_on(&self, name: &str) -> bool {
        self.dependencies.contains_key(name) || self.dev_dependencies.contains_key(name)
    }

    fn has_build_script(&self) -> bool {
        self.scripts
            .get("build")
            .is_some_and(|s| !s.trim().is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PackageManager {
    Npm { lockfile: bool },
    Yarn,
    Pnpm,
}

impl PackageManager {
    fn detect(files: &[&str]) -> Self {
        let has = |name: &str| files.contains(&name);
        if has("package-lock.json") || has("npm-shrinkwrap.json") {
            Self::Npm { lockfile: true }
        } else if has("yarn.lock") {
            Self::Yarn
        } else if has("pnpm-lock.yaml") {
            Self::Pnpm
        } else {
            Self::Npm { lockfile: false }
        }
    }

    fn install(self) -> Vec<String> {
        // Node ships corepack; it provides yarn and pnpm where the image lacks them.
        let ensure =
            |tool: &str| format!("command -v {tool} >/dev/null 2>&1 || corepack enable {tool}");
        match self {
            Self::Npm { lockfile: true } => vec!["npm ci".to_owned()],
            Self::Npm { lockfile: false } => vec!["npm install".to_owned()],
            Self::Yarn => vec![ensure("yarn"), "yarn install --frozen-lockfile".to_owned()],
            Self::Pnpm => vec![ensure("pnpm"), "pnpm install --frozen-lockfile".to_owned()],
        }
    }

    fn run_build(self) -> String {
        match self {
            Self::Npm { .. } => "npm run build",
            Self::Yarn => "yarn run build",
            Self::Pnpm => "pnpm run build",
        }
        .to_owned()
    }
}

/// What `package.json` (and, for Angular, `angular.json`) says about the build.
struct Detected {
    framework: Framework,
    output_dir: String,
    spa: Option<bool>,
    clean_urls: Option<bool>,
}

fn detect(package: &PackageJson, angular_json: Option<Vec<u8>>) -> Result<Detected, PlanError> {
    let detected = |framework, output_dir: &str, spa, clean_urls| Detected {
        framework,
        output_dir: output_dir.to_owned(),
        spa,
        clean_urls,
    };
    Ok(if package.depends_on("next") {
        detected(Framework::NextExport, "out", None, Some(true))
    } else if package.depends_on("astro") {
        // Astro's default `build.format: 'directory'` writes `about/index.html`, which the
        // router already serves for `/about` without clean URLs.
        detected(Framework::Astro, "dist", None, None)
    } else if package.depends_on("@sveltejs/kit") {
        detected(Framework::SvelteKit, "build", None, Some(true))
    } else if package.depends_on("@angular/core") {
        let dir = angular_output_dir(angular_json)?;
        detected(Framework::Angular, &dir, Some(true), None)
    } else if package.depends_on("vite") {
        detected(Framework::Vite, "dist", Some(true), None)
    } else if package.depends_on("react-scripts") {
        detected(Framework::CreateReactApp, "build", Some(true), None)
    } else if package.depends_on("@vue/cli-service") {
        detected(Framework::Vue, "dist", Some(true), None)
    } else {
        detected(Framework::Npm, "dist", None, None)
    })
}

#[derive(Debug, Deserialize)]
struct AngularJson {
    #[serde(rename = "defaultProject")]
    default_project: Option<String>,
    #[serde(default)]
    projects: BTreeMap<String, AngularProject>,
}

#[derive(Debug, Deserialize)]
struct AngularProject {
    #[serde(rename = "projectType")]
    project_type: Option<String>,
    architect: Option<AngularTargets>,
    targets: Option<AngularTargets>,
}

#[derive(Debug, Deserialize)]
struct AngularTargets {
    build: Option<AngularTarget>,
}

#[derive(Debug, Deserialize)]
struct AngularTarget {
    builder: Option<String>,
    options: Option<AngularOptions>,
}

#[derive(Debug, Deserialize)]
struct AngularOptions {
    #[serde(rename = "outputPath")]
    output_path: Option<AngularOutputPath>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum AngularOutputPath {
    Plain(String),
    Split {
        base: String,
        browser: Option<String>,
    },
}

fn angular_output_dir(angular_json: Option<Vec<u8>>) -> Result<String, PlanError> {
    let parsed = angular_json
        .and_then(|bytes| serde_json::from_slice::<AngularJson>(strip_bom(&bytes)).ok());
    let Some(config) = parsed else {
        tracing::warn!("angular.json missing or unreadable; assuming output in dist");
        return Ok("dist".to_owned());
    };
    let is_app = |p: &AngularProject| p.project_type.as_deref().is_none_or(|t| t == "application");
    let chosen = config
        .default_project
        .as_ref()
        .and_then(|name| config.projects.get_key_value(name))
        .or_else(|| config.projects.iter().find(|(_, p)| is_app(p)));
    let Some((name, project)) = chosen else {
        return Ok("dist".to_owned());
    };
    let target = project
        .architect
        .as_ref()
        .or(project.targets.as_ref())
        .and_then(|t| t.build.as_ref());
    // The `application` builder (Angular 17+, the default since) writes into `browser/`.
    let legacy_builder = target
        .and_then(|t| t.builder.as_deref())
        .is_some_and(|b| b.ends_with(":browser") || b.ends_with(":browser-esbuild"));
    let configured = target
        .and_then(|t| t.options.as_ref())
        .and_then(|o| o.output_path.as_ref());
    let dir = match (configured, legacy_builder) {
        (Some(AngularOutputPath::Plain(path)), true) => path.clone(),
        (Some(AngularOutputPath::Plain(path)), false) => {
            format!("{}/browser", path.trim_end_matches('/'))
        }
        (Some(AngularOutputPath::Split { base, browser }), _) => {
            match browser.as_deref().unwrap_or("browser") {
                "" => base.clone(),
                browser => format!("{}/{browser}", base.trim_end_matches('/')),
            }
        }
        (None, true) => format!("dist/{name}"),
        (None, false) => format!("dist/{name}/browser"),
    };
    output_dir(&dir)
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

// ---- buildspec ----

/// The phases CodeBuild runs, in the order it runs them.
pub const PHASES: [&str; 4] = ["install", "pre_build", "build", "post_build"];

/// A buildspec as the local builder executes it: only what slipway generates, so anything
/// CodeBuild would do that the local builder could not is refused when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildspec {
    /// In [`PHASES`] order; only the phases the buildspec names.
    pub phases: Vec<Phase>,
    /// `env.variables`.
    pub env: BTreeMap<String, String>,
    /// `phases.install.runtime-versions`, e.g. `nodejs` → `20`.
    pub runtime_versions: BTreeMap<String, String>,
    /// `artifacts.base-directory`: the build output, relative to the source root.
    pub base_directory: String,
    /// `artifacts.exclude-paths`: globs, relative to the base directory, left out of the output.
    pub exclude_paths: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// One of [`PHASES`].
    pub name: &'static str,
    pub commands: Vec<String>,
}

#[derive(Serialize)]
struct SpecOut<'a> {
    version: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<EnvOut>,
    phases: PhasesOut<'a>,
    artifacts: ArtifactsOut<'a>,
}

#[derive(Serialize)]
struct EnvOut {
    variables: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct PhasesOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    install: Option<PhaseOut<'a>>,
    build: PhaseOut<'a>,
}

#[derive(Serialize)]
struct PhaseOut<'a> {
    #[serde(rename = "runtime-versions", skip_serializing_if = "Option::is_none")]
    runtime_versions: Option<BTreeMap<&'static str, u32>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    commands: &'a [String],
}

#[derive(Serialize)]
struct ArtifactsOut<'a> {
    #[serde(rename = "base-directory")]
    base_directory: &'a str,
    files: [&'static str; 1],
    #[serde(rename = "exclude-paths", skip_serializing_if = "<[&str]>::is_empty")]
    exclude_paths: &'a [&'static str],
}

const ALL_FILES: &str = "**/*";

impl BuildPlan {
    /// A checkout of plain files published as they are: no commands, the whole tree (under
    /// the root) except the repository's metadata and local secrets.
    pub fn checkout_only(spa: Option<bool>, clean_urls: Option<bool>) -> Self {
        Self {
            framework: Framework::PlainHtml,
            install: Vec::new(),
            build: vec![
                "echo 'slipway: no build step; publishing the files as they are'".to_owned(),
            ],
            output_dir: ".".to_owned(),
            spa,
            clean_urls,
            node_major: None,
            root: None,
        }
    }

    /// Environment the framework's CLI wants in CI: no telemetry, no interactive prompts.
    fn env(&self) -> BTreeMap<&'static str, &'static str> {
        let vars: &[(&str, &str)] = match self.framework {
            Framework::NextExport => &[("NEXT_TELEMETRY_DISABLED", "1")],
            Framework::Astro => &[("ASTRO_TELEMETRY_DISABLED", "1")],
            Framework::Angular => &[("NG_CLI_ANALYTICS", "false")],
            _ => &[],
        };
        vars.iter().copied().collect()
    }

    /// The CodeBuild buildspec (version 0.2) for this plan.
    pub fn buildspec_yaml(&self) -> String {
        let runtime_versions = self
            .node_major
            .map(|major| BTreeMap::from([("nodejs", major)]));
        // In a monorepo every command starts in the app's directory.
        let in_root = |commands: &[String]| -> Vec<String> {
            match &self.root {
                Some(root) => commands
                    .iter()
                    .map(|c| format!("cd \"$CODEBUILD_SRC_DIR/{root}\" && {c}"))
                    .collect(),
                None => commands.to_vec(),
            }
        };
        let (install_commands, build_commands) = (in_root(&self.install), in_root(&self.build));
        let install =
            (runtime_versions.is_some() || !install_commands.is_empty()).then(|| PhaseOut {
                runtime_versions,
                commands: &install_commands,
            });
        let base_directory = match (&self.root, self.output_dir.as_str()) {
            (Some(root), ".") => root.to_string(),
            (Some(root), dir) => format!("{root}/{dir}"),
            (None, dir) => dir.to_owned(),
        };
        let checkout_only = self.framework == Framework::PlainHtml;
        let env = self.env();
        let spec = SpecOut {
            version: 0.2,
            env: (!env.is_empty()).then_some(EnvOut { variables: env }),
            phases: PhasesOut {
                install,
                build: PhaseOut {
                    runtime_versions: None,
                    commands: &build_commands,
                },
            },
            artifacts: ArtifactsOut {
                base_directory: &base_directory,
                files: [ALL_FILES],
                exclude_paths: if checkout_only {
                    &CHECKOUT_EXCLUDES
                } else {
                    &[]
                },
            },
        };
        // Serialising plain structs of strings and numbers cannot fail.
        serde_yaml::to_string(&spec).unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecIn {
    version: serde_yaml::Value,
    #[serde(default)]
    env: Option<EnvIn>,
    phases: BTreeMap<String, PhaseIn>,
    artifacts: ArtifactsIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvIn {
    #[serde(default)]
    variables: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseIn {
    #[serde(rename = "runtime-versions", default)]
    runtime_versions: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    commands: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactsIn {
    #[serde(rename = "base-directory")]
    base_directory: String,
    files: Vec<String>,
    #[serde(rename = "exclude-paths", default)]
    exclude_paths: Vec<String>,
}

fn invalid_spec(reason: impl Into<String>) -> PlanError {
    PlanError::InvalidBuildspec {
        reason: reason.into(),
    }
}

fn scalar(value: serde_yaml::Value, key: &str) -> Result<String, PlanError> {
    match value {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid_spec(format!(
            "`{key}` must be a string, number or boolean"
        ))),
    }
}

/// Parses a buildspec as [`BuildPlan::buildspec_yaml`] writes it, so the local builder runs
/// exactly what CodeBuild would be handed.
pub fn parse_buildspec(yaml: &str) -> Result<Buildspec, PlanError> {
    let raw: SpecIn = serde_yaml::from_str(yaml).map_err(|e| invalid_spec(e.to_string()))?;
    let version_ok = match &raw.version {
        serde_yaml::Value::Number(n) => n.as_f64() == Some(0.2),
        serde_yaml::Value::String(s) => s == "0.2",
        _ => false,
    };
    if !version_ok {
        return Err(invalid_spec("only `version: 0.2` is supported"));
    }

    let mut runtime_versions = BTreeMap::new();
    let mut raw_phases = raw.phases;
    if let Some(unknown) = raw_phases.keys().find(|k| !PHASES.contains(&k.as_str())) {
        return Err(invalid_spec(format!(
            "unknown phase `{unknown}`; expected one of {}",
            PHASES.join(", ")
        )));
    }
    let mut phases = Vec::new();
    for name in PHASES {
        let Some(phase) = raw_phases.remove(name) else {
            continue;
        };
        if !phase.runtime_versions.is_empty() && name != "install" {
            return Err(invalid_spec(format!(
                "`runtime-versions` belongs in the install phase, not `{name}`"
            )));
        }
        for (runtime, version) in phase.runtime_versions {
            let version = scalar(version, &format!("runtime-versions.{runtime}"))?;
            runtime_versions.insert(runtime, version);
        }
        phases.push(Phase {
            name,
            commands: phase.commands,
        });
    }
    if phases.iter().all(|p| p.commands.is_empty()) {
        return Err(invalid_spec("no phase has any commands"));
    }

    let mut env = BTreeMap::new();
    for (key, value) in raw.env.map(|e| e.variables).unwrap_or_default() {
        let value = scalar(value, &format!("env.variables.{key}"))?;
        env.insert(key, value);
    }
    if raw.artifacts.files != [ALL_FILES] {
        return Err(invalid_spec(format!(
            "artifacts.files must be ['{ALL_FILES}'], got {:?}",
            raw.artifacts.files
        )));
    }
    // `.` is the source root itself: only a checkout published as it is (with its
    // exclude-paths) uses it; slipway.toml's `output_dir` may not.
    let base_directory = match raw.artifacts.base_directory.trim() {
        "." => ".".to_owned(),
        other => output_dir(other)?,
    };
    Ok(Buildspec {
        phases,
        env,
        runtime_versions,
        base_directory,
        exclude_paths: raw.artifacts.exclude_paths,
    })
}

/// A buildspec a builder cannot run.
impl From<PlanError> for crate::ports::BuildError {
    fn from(e: PlanError) -> Self {
        Self::Buildspec(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A source tree in memory: paths and contents.
    struct Source(HashMap<&'static str, Vec<u8>>);

    impl Source {
        fn new(files: &[(&'static str, &str)]) -> Self {
            Self(
                files
                    .iter()
                    .map(|(p, c)| (*p, c.as_bytes().to_vec()))
                    .collect(),
            )
        }

        fn decide(&self, prebuilt: bool) -> Result<BuildDecision, PlanError> {
            let files: Vec<&str> = self.0.keys().copied().collect();
            decide(&files, |p| self.0.get(p).cloned(), prebuilt)
        }

        fn plan(&self) -> BuildPlan {
            match self.decide(false) {
                Ok(BuildDecision::Build(plan)) => plan,
                other => panic!("expected a build, got {other:?}"),
            }
        }
    }

    fn package(deps: &str) -> String {
        format!(r#"{{"name":"app","scripts":{{"build":"x build"}},"dependencies":{{{deps}}}}}"#)
    }

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
    fn every_framework_is_detected_with_its_output_and_routing() {
        // dependencies, framework, output dir, spa, clean URLs
        type Case = (
            &'static str,
            Framework,
            &'static str,
            Option<bool>,
            Option<bool>,
        );
        let cases: [Case; 10] = [
            (
                r#""next":"14.2.0","react":"18""#,
                Framework::NextExport,
                "out",
                None,
                Some(true),
            ),
            (r#""astro":"^4.0.0""#, Framework::Astro, "dist", None, None),
            (
                r#""@sveltejs/kit":"^2""#,
                Framework::SvelteKit,
                "build",
                None,
                Some(true),
            ),
            (
                r#""@angular/core":"^17""#,
                Framework::Angular,
                "dist",
                Some(true),
                None,
            ),
            (
                r#""vite":"^5","react":"^18""#,
                Framework::Vite,
                "dist",
                Some(true),
                None,
            ),
            (
                r#""vite":"^5","vue":"^3""#,
                Framework::Vite,
                "dist",
                Some(true),
                None,
            ),
            (
                r#""vite":"^5","svelte":"^4""#,
                Framework::Vite,
                "dist",
                Some(true),
                None,
            ),
            (
                r#""react-scripts":"5.0.1","react":"18""#,
                Framework::CreateReactApp,
                "build",
                Some(true),
                None,
            ),
            (
                r#""@vue/cli-service":"~5.0.0","vue":"^3""#,
                Framework::Vue,
                "dist",
                Some(true),
                None,
            ),
            (r#""webpack":"^5""#, Framework::Npm, "dist", None, None),
        ];
        for (deps, framework, output, spa, clean_urls) in cases {
            let pkg = package(deps);
            let plan = Source::new(&[("package.json", &pkg), ("package-lock.json", "{}")]).plan();
            assert_eq!(plan.framework, framework, "{deps}");
            assert_eq!(plan.output_dir, output, "{deps}");
            assert_eq!(plan.spa, spa, "{deps}");
            assert_eq!(plan.clean_urls, clean_urls, "{deps}");
            assert_eq!(plan.install, ["npm ci"]);
            assert_eq!(plan.build, ["npm run build"]);
            assert_eq!(plan.node_major, Some(NODE_MAJOR));
        }
    }

    #[test]
    fn dev_dependencies_count_and_vite_alone_is_vite() {
        let pkg = r#"{"scripts":{"build":"vite build"},"devDependencies":{"vite":"^5"}}"#;
        assert_eq!(
            Source::new(&[("package.json", pkg)]).plan().framework,
            Framework::Vite
        );
    }

    #[test]
    fn the_lockfile_picks_the_package_manager() {
        let pkg = package(r#""vite":"5""#);
        let plan_with = |lock: &'static str| {
            let mut files = vec![("package.json", pkg.as_str())];
            if !lock.is_empty() {
                files.push((lock, ""));
            }
            Source::new(&files).plan()
        };
        let npm = plan_with("package-lock.json");
        assert_eq!(
            (npm.install, npm.build),
            (vec!["npm ci".to_owned()], vec!["npm run build".to_owned()])
        );
        let yarn = plan_with("yarn.lock");
        assert_eq!(
            yarn.install.last().unwrap(),
            "yarn install --frozen-lockfile"
        );
        assert_eq!(yarn.build, ["yarn run build"]);
        let pnpm = plan_with("pnpm-lock.yaml");
        assert_eq!(
            pnpm.install.last().unwrap(),
            "pnpm install --frozen-lockfile"
        );
        assert!(pnpm.install[0].contains("corepack enable pnpm"));
        assert_eq!(pnpm.build, ["pnpm run build"]);
        assert_eq!(plan_with("").install, ["npm install"]);
    }

    #[test]
    fn angular_output_comes_from_angular_json() {
        let pkg = package(r#""@angular/core":"^17""#);
        let output_for = |angular: &str| {
            Source::new(&[("package.json", pkg.as_str()), ("angular.json", angular)])
                .plan()
                .output_dir
        };
        assert_eq!(
            output_for(
                r#"{"projects":{"shop":{"projectType":"application","architect":{"build":{"builder":"@angular-devkit/build-angular:application","options":{"outputPath":"dist/shop"}}}}}}"#
            ),
            "dist/shop/browser"
        );
        assert_eq!(
            output_for(
                r#"{"projects":{"shop":{"architect":{"build":{"builder":"@angular-devkit/build-angular:browser","options":{"outputPath":"dist/shop"}}}}}}"#
            ),
            "dist/shop"
        );
        assert_eq!(
            output_for(
                r#"{"projects":{"lib":{"projectType":"library"},"web":{"projectType":"application","architect":{"build":{"builder":"@angular/build:application"}}}}}"#
            ),
            "dist/web/browser"
        );
        assert_eq!(
            output_for(
                r#"{"projects":{"web":{"architect":{"build":{"options":{"outputPath":{"base":"out/web","browser":""}}}}}}}"#
            ),
            "out/web"
        );
        assert_eq!(output_for("not json"), "dist");
        let err = Source::new(&[
            ("package.json", pkg.as_str()),
            ("angular.json", r#"{"projects":{"x":{"architect":{"build":{"options":{"outputPath":"../../etc"}}}}}}"#),
        ])
        .decide(false)
        .unwrap_err();
        assert!(matches!(err, PlanError::UnsafeOutputDir { .. }), "{err:?}");
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
    fn broken_package_json_is_reported() {
        for bad in [
            "{",
            r#"{"dependencies":["vite"]}"#,
            r#"{"scripts":{"build":1}}"#,
        ] {
            let err = Source::new(&[("package.json", bad)])
                .decide(false)
                .unwrap_err();
            assert!(
                matches!(err, PlanError::InvalidPackageJson { .. }),
                "{bad}: {err:?}"
            );
        }
        let with_bom = format!("\u{feff}{}", package(r#""vite":"5""#));
        assert_eq!(
            Source::new(&[("package.json", &with_bom)]).plan().framework,
            Framework::Vite
        );
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

    #[test]
    fn buildspec_round_trips_for_every_framework() {
        let frameworks = [
            r#""next":"14""#,
            r#""astro":"4""#,
            r#""@sveltejs/kit":"2""#,
            r#""@angular/core":"17""#,
            r#""vite":"5""#,
            r#""react-scripts":"5""#,
            r#""@vue/cli-service":"5""#,
            r#""parcel":"2""#,
        ];
        for deps in frameworks {
            for lock in ["package-lock.json", "yarn.lock", "pnpm-lock.yaml"] {
                let pkg = package(deps);
                let plan = Source::new(&[("package.json", pkg.as_str()), (lock, "")]).plan();
                let yaml = plan.buildspec_yaml();
                let spec = parse_buildspec(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
                assert_eq!(spec.phases.len(), 2, "{yaml}");
                assert_eq!(spec.phases[0].name, "install");
                assert_eq!(spec.phases[0].commands, plan.install);
                assert_eq!(spec.phases[1].name, "build");
                assert_eq!(spec.phases[1].commands, plan.build);
                assert_eq!(spec.base_directory, plan.output_dir);
                assert_eq!(
                    spec.runtime_versions.get("nodejs").map(String::as_str),
                    Some("20")
                );
            }
        }
    }

    #[test]
    fn monorepo_and_checkout_buildspecs_run_in_the_root_and_keep_secrets_out() {
        let pkg = package(r#""vite":"5""#);
        let mut plan =
            Source::new(&[("package.json", pkg.as_str()), ("package-lock.json", "")]).plan();
        plan.root = Some(RootDir::parse("apps/web").unwrap());
        let spec = parse_buildspec(&plan.buildspec_yaml()).unwrap();
        assert_eq!(
            spec.phases[1].commands,
            ["cd \"$CODEBUILD_SRC_DIR/apps/web\" && npm run build"]
        );
        assert_eq!(spec.base_directory, "apps/web/dist");
        assert!(spec.exclude_paths.is_empty());

        let checkout = BuildPlan::checkout_only(Some(true), None);
        let spec = parse_buildspec(&checkout.buildspec_yaml()).unwrap();
        assert_eq!(spec.base_directory, ".");
        assert_eq!(
            spec.exclude_paths,
            [".git/**/*", "**/.env*", "slipway.toml"]
        );
        let mut rooted = checkout;
        rooted.root = Some(RootDir::parse("site").unwrap());
        assert_eq!(
            parse_buildspec(&rooted.buildspec_yaml())
                .unwrap()
                .base_directory,
            "site"
        );
    }

    #[test]
    fn buildspec_has_codebuild_shape() {
        let pkg = package(r#""next":"14""#);
        let plan = Source::new(&[("package.json", pkg.as_str()), ("package-lock.json", "")]).plan();
        let yaml = plan.buildspec_yaml();
        let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(doc["version"].as_f64(), Some(0.2), "{yaml}");
        assert_eq!(
            doc["phases"]["install"]["runtime-versions"]["nodejs"].as_u64(),
            Some(20)
        );
        assert_eq!(
            doc["phases"]["install"]["commands"][0].as_str(),
            Some("npm ci")
        );
        assert_eq!(
            doc["phases"]["build"]["commands"][0].as_str(),
            Some("npm run build")
        );
        assert_eq!(doc["artifacts"]["base-directory"].as_str(), Some("out"));
        assert_eq!(doc["artifacts"]["files"][0].as_str(), Some("**/*"));
        assert_eq!(
            doc["env"]["variables"]["NEXT_TELEMETRY_DISABLED"].as_str(),
            Some("1")
        );
        let spec = parse_buildspec(&yaml).unwrap();
        assert_eq!(
            spec.env.get("NEXT_TELEMETRY_DISABLED").map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn commands_with_yaml_special_characters_survive() {
        let toml = r#"[build]
command = ["echo 'a: b' # not a comment", "test -d out || { echo \"missing\"; exit 1; }", "- dash", "*star"]
output_dir = "out"
"#;
        let plan = Source::new(&[("slipway.toml", toml)]).plan();
        let spec = parse_buildspec(&plan.buildspec_yaml()).unwrap();
        assert_eq!(spec.phases.len(), 1);
        assert_eq!(spec.phases[0].name, "build");
        assert_eq!(spec.phases[0].commands, plan.build);
    }

    #[test]
    fn hand_written_buildspecs_parse_in_phase_order() {
        let yaml = r#"
version: "0.2"
env:
  variables:
    CI: true
    RETRIES: 3
    NAME: site
phases:
  post_build:
    commands: ["echo done"]
  build:
    commands:
      - make
  pre_build:
    commands:
      - make deps
artifacts:
  base-directory: out/site/
  files:
    - '**/*'
"#;
        let spec = parse_buildspec(yaml).unwrap();
        let names: Vec<&str> = spec.phases.iter().map(|p| p.name).collect();
        assert_eq!(names, ["pre_build", "build", "post_build"]);
        assert_eq!(spec.env["CI"], "true");
        assert_eq!(spec.env["RETRIES"], "3");
        assert_eq!(spec.base_directory, "out/site");
    }

    #[test]
    fn buildspecs_the_local_builder_cannot_honour_are_refused() {
        let base = |phases: &str, extra: &str| {
            format!("version: 0.2\n{extra}phases:\n{phases}artifacts:\n  base-directory: out\n  files: ['**/*']\n")
        };
        let ok_phase = "  build:\n    commands: [make]\n";
        for (yaml, needle) in [
            (base(ok_phase, "").replace("0.2", "0.1"), "version"),
            (base("  deploy:\n    commands: [x]\n", ""), "deploy"),
            (
                base("  build:\n    commands: [make]\n    finally: [x]\n", ""),
                "finally",
            ),
            (
                base(ok_phase, "env:\n  secrets-manager:\n    X: y\n"),
                "secrets-manager",
            ),
            (base(ok_phase, "cache:\n  paths: [x]\n"), "cache"),
            (
                base(
                    "  build:\n    runtime-versions:\n      nodejs: 20\n    commands: [make]\n",
                    "",
                ),
                "runtime-versions",
            ),
            (base("  build: {}\n", ""), "no phase"),
            (
                base(ok_phase, "").replace("'**/*'", "'*.html'"),
                "artifacts.files",
            ),
            (
                "version: 0.2\nphases: {build: {commands: [make]}}\n".to_owned(),
                "artifacts",
            ),
            ("not: [valid".to_owned(), ""),
        ] {
            match parse_buildspec(&yaml) {
                Err(PlanError::InvalidBuildspec { reason }) => {
                    assert!(reason.contains(needle), "{needle}: {reason}")
                }
                other => panic!("{yaml}\nexpected InvalidBuildspec, got {other:?}"),
            }
        }
        let escaping = base(ok_phase, "").replace("base-directory: out", "base-directory: ../..");
        assert!(matches!(
            parse_buildspec(&escaping),
            Err(PlanError::UnsafeOutputDir { .. })
        ));
    }
}
