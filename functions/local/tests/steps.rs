//! Each step handler against the real embedded stores (SQLite and the disk object store).

use slipway_core::model::Bucket;
use slipway_core::model::{DeploymentSource, DeploymentStatus, ObjectLocation};
use slipway_core::names::{DeploymentId, SiteName};
use slipway_core::ports::{KeyValueStore, Lifecycle, ObjectStore, StateStore};
use slipway_core::steps::{
    self, ActivateInput, ArtifactRef, CaughtError, MarkFailedInput, PrepareInput, PrepareOutput,
    PruneInput, PublishInput,
};
use slipway_testkit::embedded::{zip_of, Embedded};

const INDEX: &[u8] = b"<!doctype html><title>hi</title>";

fn prepare_input(site: &str, id: DeploymentId, prebuilt: bool) -> PrepareInput {
    PrepareInput {
        site: SiteName::parse(site).unwrap(),
        deployment_id: id,
        source: DeploymentSource::Archive(ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/{site}/{id}.zip"),
        }),
        prebuilt,
    }
}

/// Publish's input for what Prepare decided, as the state machine passes it on.
fn publish_input(site: &str, id: DeploymentId, prepared: &PrepareOutput) -> PublishInput {
    PublishInput {
        site: SiteName::parse(site).unwrap(),
        deployment_id: id,
        artifact: prepared.artifact.clone(),
        framework: prepared.framework,
    }
}

/// Runs Prepare and Publish for a prebuilt upload; returns what Prepare decided.
async fn prepare_and_publish(h: &Embedded, site: &str, id: DeploymentId) -> PrepareOutput {
    let prepared = steps::prepare(&h.tasks.prepare, prepare_input(site, id, true))
        .await
        .unwrap();
    steps::publish(&h.tasks.publish, publish_input(site, id, &prepared))
        .await
        .unwrap();
    prepared
}

/// Runs Prepare, Publish and Activate for a prebuilt upload, as the state machine would.
async fn deploy(h: &Embedded, site: &str, files: &[(&str, &[u8])]) -> DeploymentId {
    let name = SiteName::parse(site).unwrap();
    let id = h.upload(&name, zip_of(files), true).await.id;
    prepare_and_publish(h, site, id).await;
    steps::activate(
        &h.tasks.activate,
        ActivateInput {
            site: name,
            deployment_id: id,
        },
    )
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn prepare_publishes_plain_static_files_as_they_are() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let id = h
        .upload(
            &site,
            zip_of(&[("index.html", INDEX), ("css/site.css", b"body{}")]),
            false,
        )
        .await
        .id;
    let out = steps::prepare(&h.tasks.prepare, prepare_input("docs", id, false))
        .await
        .unwrap();
    assert!(!out.needs_build);
    assert_eq!(out.artifact.location.key, format!("uploads/docs/{id}.zip"));
    assert_eq!(
        out.source_location,
        format!("acme-source/uploads/docs/{id}.zip")
    );
    let d = h.state.get_deployment(&site, &id).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Building);
    assert!(!d.built);
}

#[tokio::test]
async fn prepare_builds_sources_with_a_package_json_and_detects_spa_routing() {
    let h = Embedded::new();
    let site = h.create_site_retaining("app", 10).await;
    let package = br#"{"name":"app","scripts":{"build":"vite build"},"devDependencies":{"vite":"^5.0.0"},"dependencies":{"react":"^18.0.0"}}"#;
    let id = h
        .upload(
            &site,
            zip_of(&[("package.json", package), ("index.html", INDEX)]),
            false,
        )
        .await
        .id;
    let out = steps::prepare(&h.tasks.prepare, prepare_input("app", id, false))
        .await
        .unwrap();
    assert!(out.needs_build);
    let buildspec = out.buildspec.unwrap();
    assert!(buildspec.contains("npm run build"), "{buildspec}");
    assert_eq!(out.artifact.location.bucket, Bucket::Artifacts);
    assert_eq!(
        out.artifact.location.key,
        format!("builds/app/{id}/output.zip")
    );
    assert!(out.routing.spa);
    assert!(h.state.get_deployment(&site, &id).await.unwrap().built);
}

#[tokio::test]
async fn prepare_with_prebuilt_skips_the_build_even_with_a_package_json() {
    let h = Embedded::new();
    let site = h.create_site_retaining("app", 10).await;
    let id = h
        .upload(
            &site,
            zip_of(&[("package.json", b"{}"), ("index.html", INDEX)]),
            true,
        )
        .await
        .id;
    let out = steps::prepare(&h.tasks.prepare, prepare_input("app", id, true))
        .await
        .unwrap();
    assert!(!out.needs_build);
}

#[tokio::test]
async fn prepare_rejects_bad_sources_with_stable_error_names() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not a zip", b"definitely not a zip file".to_vec()),
        (
            "truncated",
            zip_of(&[("index.html", &[b'x'; 5000])])[..100].to_vec(),
        ),
        ("zip slip", zip_of(&[("../../evil.html", INDEX)])),
        ("empty", zip_of(&[])),
    ];
    for (what, bytes) in cases {
        let id = h.upload(&site, bytes, false).await.id;
        let err = steps::prepare(&h.tasks.prepare, prepare_input("docs", id, false))
            .await
            .unwrap_err();
        assert_eq!(err.name(), "SourceInvalid", "{what}: {err}");
        assert_eq!(
            h.state.get_deployment(&site, &id).await.unwrap().status,
            DeploymentStatus::Queued,
            "{what}"
        );
    }
    let unknown = prepare_input("nope", DeploymentId::generate(), false);
    assert_eq!(
        steps::prepare(&h.tasks.prepare, unknown)
            .await
            .unwrap_err()
            .name(),
        "SiteNotFound"
    );
    let missing = prepare_input("docs", DeploymentId::generate(), false);
    assert_eq!(
        steps::prepare(&h.tasks.prepare, missing)
            .await
            .unwrap_err()
            .name(),
        "DeploymentNotFound"
    );
}

#[tokio::test]
async fn publish_sets_types_and_cache_headers_and_is_safe_to_rerun() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    // Larger than Publish's inline limit, and incompressible, so it streams in chunks.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..6 * 1024 * 1024)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let files: &[(&str, &[u8])] = &[
        ("index.html", INDEX),
        ("assets/index-BdK3x9Qz.js", b"console.log(1)"),
        ("logo.svg", b"<svg/>"),
        ("big.bin", &big),
    ];
    let id = h.upload(&site, zip_of(files), true).await.id;
    let prepared = steps::prepare(&h.tasks.prepare, prepare_input("docs", id, true))
        .await
        .unwrap();
    let input = publish_input("docs", id, &prepared);
    let first = steps::publish(&h.tasks.publish, input.clone())
        .await
        .unwrap();
    assert_eq!(first.file_count, 4);
    let again = steps::publish(&h.tasks.publish, input).await.unwrap();
    assert_eq!(first, again);

    let prefix = format!("docs/{id}/");
    let head = |path: &str| {
        let key = format!("{prefix}{path}");
        let objects = h.objects.clone();
        async move { objects.head(Bucket::Hosting, &key).await.unwrap().unwrap() }
    };
    let html = head("index.html").await;
    assert_eq!(html.meta.content_type, "text/html; charset=utf-8");
    assert_eq!(
        html.meta.cache_control.as_deref(),
        Some("public, max-age=0, must-revalidate")
    );
    let js = head("assets/index-BdK3x9Qz.js").await;
    assert!(
        js.meta.content_type.starts_with("text/javascript"),
        "{}",
        js.meta.content_type
    );
    assert_eq!(
        js.meta.cache_control.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        head("logo.svg").await.meta.cache_control.as_deref(),
        Some("public, max-age=0, must-revalidate")
    );
    assert_eq!(head("big.bin").await.size, 6 * 1024 * 1024);
    let d = h.state.get_deployment(&site, &id).await.unwrap();
    assert_eq!(
        (d.status, d.file_count),
        (DeploymentStatus::Publishing, Some(4))
    );
}

#[tokio::test]
async fn publish_strips_a_zipped_folder() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let id = h
        .upload(
            &site,
            zip_of(&[("dist/index.html", INDEX), ("dist/a/b.html", INDEX)]),
            true,
        )
        .await
        .id;
    let prepared = prepare_and_publish(&h, "docs", id).await;
    assert_eq!(prepared.artifact.root.as_deref(), Some("dist/"));
    assert_eq!(
        h.hosted_keys(&format!("docs/{id}/")).await,
        [
            format!("docs/{id}/a/b.html"),
            format!("docs/{id}/index.html")
        ]
    );
}

#[tokio::test]
async fn activate_switches_the_host_key_and_never_moves_backwards() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let first = deploy(&h, "docs", &[("index.html", INDEX)]).await;
    assert_eq!(
        h.state.get("docs.sites.test").await.unwrap(),
        Some(format!("docs/{first}"))
    );

    // Two deploys race: the newer one activates first, the older one finishes later.
    let older = h
        .upload(&site, zip_of(&[("index.html", b"old")]), true)
        .await
        .id;
    let newer = h
        .upload(&site, zip_of(&[("index.html", b"new")]), true)
        .await
        .id;
    for id in [older, newer] {
        prepare_and_publish(&h, "docs", id).await;
    }
    let won = steps::activate(
        &h.tasks.activate,
        ActivateInput {
            site: site.clone(),
            deployment_id: newer,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (won.status, won.previous),
        (DeploymentStatus::Live, Some(first))
    );
    let lost = steps::activate(
        &h.tasks.activate,
        ActivateInput {
            site: site.clone(),
            deployment_id: older,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (lost.status, lost.superseded_by),
        (DeploymentStatus::Superseded, Some(newer))
    );
    assert_eq!(
        h.state.get("docs.sites.test").await.unwrap(),
        Some(format!("docs/{newer}"))
    );
}

#[tokio::test]
async fn activate_carries_the_deployments_routing_flags() {
    let h = Embedded::new();
    let site = h.create_site_retaining("app", 10).await;
    let id = h
        .upload(
            &site,
            zip_of(&[
                ("slipway.toml", b"spa = true\nclean_urls = true\n"),
                ("index.html", INDEX),
            ]),
            true,
        )
        .await
        .id;
    let prepared = prepare_and_publish(&h, "app", id).await;
    assert!(prepared.routing.spa && prepared.routing.clean_urls);
    steps::activate(
        &h.tasks.activate,
        ActivateInput {
            site,
            deployment_id: id,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        h.state.get("app.sites.test").await.unwrap(),
        Some(format!("app/{id};sc"))
    );
}

#[tokio::test]
async fn prune_keeps_retention_live_and_the_rollback_target() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 2).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(deploy(&h, "docs", &[("index.html", format!("v{n}").as_bytes())]).await);
    }
    // Roll back to v1: v4 becomes rolled-back, v1 live; the rollback target is now v3.
    h.state
        .move_production(
            &site,
            &ids[1],
            slipway_core::decisions::Displaced::RolledBack,
            time::OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let out = steps::prune(
        &h.tasks.prune,
        PruneInput {
            site: site.clone(),
            deployment_id: ids[4],
        },
    )
    .await
    .unwrap();
    let mut deleted = out.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, [ids[0], ids[2]]);
    assert_eq!(
        out.requests, 4,
        "hosting batch + source object, per deployment"
    );
    let left: Vec<_> = h
        .state
        .list_deployments(&site)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(left, [ids[4], ids[3], ids[1]]);
    assert!(h.hosted_keys(&format!("docs/{}/", ids[0])).await.is_empty());
    assert_eq!(
        h.hosted_keys(&format!("docs/{}/", ids[1])).await.len(),
        1,
        "the live version keeps its files"
    );
}

#[tokio::test]
async fn mark_failed_records_the_reason_removes_partial_files_and_leaves_live_alone() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let live = deploy(&h, "docs", &[("index.html", INDEX)]).await;
    let broken = h
        .upload(&site, zip_of(&[("index.html", b"half")]), true)
        .await
        .id;
    prepare_and_publish(&h, "docs", broken).await;
    let input = MarkFailedInput {
        site: site.clone(),
        deployment_id: broken,
        error: CaughtError {
            error: "StoreUnavailable".into(),
            cause: "disk on fire".into(),
        },
    };
    let out = steps::mark_failed(&h.tasks.mark_failed, input)
        .await
        .unwrap();
    assert!(out.recorded);
    let d = h.state.get_deployment(&site, &broken).await.unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert_eq!(d.error.unwrap().cause, "disk on fire");
    assert!(h.hosted_keys(&format!("docs/{broken}/")).await.is_empty());
    assert_eq!(
        h.state.get("docs.sites.test").await.unwrap(),
        Some(format!("docs/{live}"))
    );
    assert_eq!(h.hosted_keys(&format!("docs/{live}/")).await.len(), 1);

    // A late failure (say, in Prune) never fails or cleans a live deployment.
    let late = MarkFailedInput {
        site: site.clone(),
        deployment_id: live,
        error: CaughtError {
            error: "StoreUnavailable".into(),
            cause: "x".into(),
        },
    };
    let out = steps::mark_failed(&h.tasks.mark_failed, late)
        .await
        .unwrap();
    assert!(!out.recorded);
    assert_eq!(
        h.state.get_deployment(&site, &live).await.unwrap().status,
        DeploymentStatus::Live
    );
    assert_eq!(h.hosted_keys(&format!("docs/{live}/")).await.len(), 1);
}

#[tokio::test]
async fn publish_reports_a_missing_artifact_as_object_not_found() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let id = h
        .upload(&site, zip_of(&[("index.html", INDEX)]), true)
        .await
        .id;
    steps::prepare(&h.tasks.prepare, prepare_input("docs", id, true))
        .await
        .unwrap();
    let artifact = ArtifactRef {
        location: ObjectLocation {
            bucket: Bucket::Artifacts,
            key: "builds/docs/missing/output.zip".into(),
        },
        root: None,
    };
    let err = steps::publish(
        &h.tasks.publish,
        PublishInput {
            site,
            deployment_id: id,
            artifact,
            framework: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "ObjectNotFound");
}

#[tokio::test]
async fn clean_urls_publish_an_alias_for_folder_pages_without_replacing_real_files() {
    let h = Embedded::new();
    let site = h.create_site_retaining("docs", 10).await;
    let files: &[(&str, &[u8])] = &[
        ("slipway.toml", b"clean_urls = true\n"),
        (".env", b"SECRET=1"),
        ("config/.env.production", b"SECRET=2"),
        ("index.html", INDEX),
        ("guide/index.html", b"guide folder page"),
        ("about.html", b"about file"),
        ("about/index.html", b"about folder page"),
    ];
    let id = h.upload(&site, zip_of(files), true).await.id;
    prepare_and_publish(&h, "docs", id).await;
    let read = |path: &str| {
        let objects = h.objects.clone();
        let key = format!("docs/{id}/{path}");
        async move {
            let bytes = objects
                .get_range(Bucket::Hosting, &key, 0..1024)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        }
    };
    assert_eq!(read("guide.html").await, "guide folder page");
    assert_eq!(
        read("about.html").await,
        "about file",
        "a real file wins over the alias"
    );
    assert_eq!(read("about/index.html").await, "about folder page");
    let keys = h.hosted_keys(&format!("docs/{id}/")).await;
    assert!(
        keys.iter()
            .all(|k| !k.contains(".env") && !k.ends_with("slipway.toml")),
        "{keys:?}"
    );
}
