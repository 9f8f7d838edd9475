//! Framework detection from `package.json` (dependencies and devDependencies):
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

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::config::{output_dir, strip_bom};
use super::{Framework, PlanError};

#[derive(Debug, Deserialize)]
pub(super) struct PackageJson {
    #[serde(default)]
    dependencies: BTreeMap<String, IgnoredAny>,
    #[serde(default, rename = "devDependencies")]
    dev_dependencies: BTreeMap<String, IgnoredAny>,
    #[serde(default)]
    scripts: BTreeMap<String, String>,
}

impl PackageJson {
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, PlanError> {
        serde_json::from_slice(strip_bom(bytes)).map_err(|e| PlanError::InvalidPackageJson {
            reason: e.to_string(),
        })
    }

    pub(super) fn depends_on(&self, name: &str) -> bool {
        self.dependencies.contains_key(name) || self.dev_dependencies.contains_key(name)
    }

    pub(super) fn has_build_script(&self) -> bool {
        self.scripts
            .get("build")
            .is_some_and(|s| !s.trim().is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PackageManager {
    Npm { lockfile: bool },
    Yarn,
    Pnpm,
}

impl PackageManager {
    pub(super) fn detect(files: &[&str]) -> Self {
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

    pub(super) fn install(self) -> Vec<String> {
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

    pub(super) fn run_build(self) -> String {
        match self {
            Self::Npm { .. } => "npm run build",
            Self::Yarn => "yarn run build",
            Self::Pnpm => "pnpm run build",
        }
        .to_owned()
    }
}

/// What `package.json` (and, for Angular, `angular.json`) says about the build.
pub(super) struct Detected {
    pub(super) framework: Framework,
    pub(super) output_dir: String,
    pub(super) spa: Option<bool>,
    pub(super) clean_urls: Option<bool>,
}

pub(super) fn detect(
    package: &PackageJson,
    angular_json: Option<Vec<u8>>,
) -> Result<Detected, PlanError> {
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

#[cfg(test)]
mod tests {
    use crate::site::build_plan::test_support::{package, Source};
    use crate::site::build_plan::{Framework, PlanError, NODE_MAJOR};

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
}
