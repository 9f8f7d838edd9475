//! Writing the CodeBuild buildspec for a [`BuildPlan`], and parsing one back for the local
//! builder.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::output_dir;
use super::{BuildPlan, Framework, PlanError, CONFIG_FILE};

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

/// Never published from a checkout: the repository's metadata and local secrets.
const CHECKOUT_EXCLUDES: [&str; 3] = [".git/**/*", "**/.env*", CONFIG_FILE];

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::RootDir;
    use crate::site::build_plan::test_support::{package, Source};

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
