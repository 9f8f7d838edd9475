//! The architecture invariants `ARCHITECTURE.md` lists that the compiler alone does not keep:
//! which crates may depend on what, that core's modules import each other in one direction
//! only, and that nothing invalidates the CDN.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use slipway_tests::files_under;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every crate under `functions/`: its directory name and its manifest.
fn manifests() -> Vec<(String, toml::Table)> {
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        crates.push((name, text.parse::<toml::Table>().unwrap()));
    }
    crates.sort_by(|a, b| a.0.cmp(&b.0));
    crates
}

/// The names in one dependency table of a manifest (`dependencies`, `dev-dependencies`).
fn dependencies<'a>(manifest: &'a toml::Table, table: &str) -> BTreeSet<&'a str> {
    manifest
        .get(table)
        .and_then(toml::Value::as_table)
        .map(|deps| deps.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn only_the_aws_crate_depends_on_the_aws_sdk() {
    for (name, manifest) in manifests() {
        for table in ["dependencies", "dev-dependencies"] {
            let sdk: Vec<_> = dependencies(&manifest, table)
                .into_iter()
                .filter(|dep| dep.starts_with("aws-sdk-"))
                .collect();
            assert!(
                name == "aws" || sdk.is_empty(),
                "functions/{name} {table}: {sdk:?}; only functions/aws may use the AWS SDK"
            );
        }
    }
}

#[test]
fn core_knows_no_aws_no_http_server_and_no_other_slipway_crate() {
    let (_, core) = manifests().into_iter().find(|(n, _)| n == "core").unwrap();
    for dep in dependencies(&core, "dependencies") {
        let forbidden = dep.starts_with("aws")
            || dep.starts_with("lambda")
            || ["axum", "hyper", "hyper-util", "reqwest", "rusqlite"].contains(&dep)
            || dep.starts_with("slipway-");
        assert!(!forbidden, "slipway-core must not depend on {dep}");
    }
    let (_, asl) = manifests().into_iter().find(|(n, _)| n == "asl").unwrap();
    assert!(
        dependencies(&asl, "dependencies")
            .iter()
            .all(|dep| !dep.starts_with("slipway-")),
        "slipway-asl depends on no slipway crate"
    );
}

#[test]
fn what_ships_to_lambda_never_links_the_embedded_runtime_or_the_test_kit() {
    for (name, manifest) in manifests() {
        let lambda =
            dependencies(&manifest, "dependencies").contains("slipway-lambda") || name == "lambda";
        if !lambda {
            continue;
        }
        for dep in ["slipway-local", "slipway-testkit"] {
            assert!(
                !dependencies(&manifest, "dependencies").contains(dep),
                "functions/{name} must not depend on {dep} outside its tests"
            );
        }
    }
}

/// Core's modules and the modules each imports (`crate::x` or `crate::site::x`), outside
/// tests and doc comments.
fn core_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = repo().join("functions/core/src");
    let mut graph = BTreeMap::new();
    for path in files_with(&src, &[".rs"]) {
        let relative = path.strip_prefix(&src).unwrap().with_extension("");
        let module = relative
            .to_str()
            .unwrap()
            .trim_end_matches("/mod")
            .replace('/', "::");
        // A module folder is one module (the step handlers, a site module's parts): its files
        // share helpers through `super`.
        let module = match module.split("::").collect::<Vec<_>>()[..] {
            ["steps", ..] => "steps".to_owned(),
            ["site", inner, _, ..] => format!("site::{inner}"),
            _ => module,
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let imports = graph.entry(module.clone()).or_insert_with(BTreeSet::new);
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let mut path = line[i + "crate::".len()..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap()
                    .split("::");
                let first = path.next().unwrap_or_default().to_owned();
                let target = match (first.as_str(), path.next()) {
                    ("site", Some(inner)) => format!("site::{inner}"),
                    _ => first,
                };
                if target != module {
                    imports.insert(target);
                }
            }
        }
    }
    graph
}

#[test]
fn core_modules_import_each_other_in_one_direction() {
    let graph = core_imports();
    assert!(graph.contains_key("decisions") && graph.contains_key("site::edge"));
    // Depth-first search for a path back to where it started.
    fn reaches(
        graph: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        graph
            .get(from)
            .into_iter()
            .flatten()
            .any(|next| next == to || (seen.insert(next.clone()) && reaches(graph, next, to, seen)))
    }
    for (module, imports) in &graph {
        for import in imports {
            assert!(
                !reaches(&graph, import, module, &mut BTreeSet::new()),
                "core's {module} imports {import}, which imports {module} back"
            );
        }
    }
    // The layers the map promises: the model and the decisions know no ports, API or steps.
    for low in ["names", "model", "decisions", "records"] {
        for high in ["ports", "api", "api_types", "steps", "github"] {
            assert!(
                !graph[low].contains(high),
                "core's {low} must not import {high}"
            );
        }
    }
}

/// Every file under `dir` whose name ends with one of `extensions`.
fn files_with(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|file| extensions.iter().any(|ext| file.ends_with(ext)))
        .map(|file| dir.join(file))
        .collect()
}

/// Deploys switch a key-value entry to an immutable prefix, so no cache is ever invalidated:
/// no code calls CreateInvalidation and the stack grants it to no role.
#[test]
fn nothing_invalidates_the_cdn() {
    let mut sources = files_with(&repo().join("functions"), &[".rs"]);
    sources.extend(files_with(
        &repo().join("infra"),
        &[".yaml", ".yml", ".js", ".json"],
    ));
    sources.extend(files_with(&repo().join("statemachines"), &[".json"]));
    assert!(sources.len() > 50, "found only {} files", sources.len());
    let offenders: Vec<String> = sources
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap().to_lowercase();
            text.contains("createinvalidation") || text.contains("create_invalidation")
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "invalidation in {offenders:?}");
}
