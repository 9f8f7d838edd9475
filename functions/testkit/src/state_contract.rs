//! The contract every [`StateStore`] keeps: the same cases run against SQLite
//! (`functions/local/tests/state_contract.rs`) and DynamoDB on moto
//! (`functions/aws/tests/dynamodb.rs`), so the two stores cannot drift apart. Each case takes
//! a fresh, empty store. A store's own suite keeps only what is specific to it (its table
//! shape, reopening, paging).

use slipway_core::decisions::{ActivateOutcome, Displaced};
use slipway_core::model::Bucket;
use slipway_core::model::{
    rollback_candidate, Deployment, DeploymentSource, DeploymentStatus, GitSource, LifecycleError,
    ObjectLocation, Preview, RecordedError, RoutingFlags, Site, Traffic,
};
use slipway_core::names::{
    BranchName, CommitSha, DeploymentId, RepoName, ServiceName, SiteName, TargetName,
};
use slipway_core::ports::{DeploymentPatch, Lifecycle, StateError, StateStore};
use slipway_core::service::{
    ApiRoute, Concurrency, MemoryMb, Runtime, Service, ServiceSettings, TimeoutSeconds,
};
use time::OffsetDateTime;

/// One `#[tokio::test]` per contract case, each on the store `$fresh` (an async expression
/// giving `(store, guard)`: the guard, a temporary directory say, lives as long as the case).
#[macro_export]
macro_rules! state_store_contract {
    ($fresh:expr) => {
        $crate::state_store_contract!(@cases $fresh;
            sites_are_unique_and_listed_by_name,
            deployments_need_their_site_and_round_trip_exactly,
            transitions_are_conditional_on_the_lifecycle,
            activate_supersedes_the_previous_and_never_moves_backwards,
            concurrent_activations_leave_exactly_the_newest_live,
            live_and_in_flight_deployments_cannot_be_deleted,
            logs_append_in_order_and_read_incrementally,
            activating_a_preview_deployment_creates_its_preview_and_leaves_production_alone,
            the_newest_deployment_wins_per_target_independently_of_production,
            promote_keeps_the_preview_deployment_live_and_supersedes_production,
            rollback_after_a_promote_returns_to_the_production_deployment_before_it,
            a_removed_preview_refuses_deployments_made_before_its_removal,
            concurrent_activations_of_a_new_preview_leave_exactly_the_newest_live,
            webhook_deliveries_are_recorded_once_until_they_expire,
            services_belong_to_an_existing_site_and_round_trip_exactly,
            deleting_a_service_removes_only_that_service,
        );
    };
    (@cases $fresh:expr; $($case:ident,)+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $fresh.await;
                $crate::state_contract::$case(&store).await;
            }
        )+
    };
}

/// A name no other case (or earlier run against the same emulator) uses.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", DeploymentId::generate())
}

pub fn name(raw: &str) -> SiteName {
    SiteName::parse(raw).unwrap()
}

pub fn site(raw: &str) -> Site {
    Site {
        name: name(raw),
        routing: RoutingFlags {
            spa: true,
            clean_urls: false,
        },
        retain: 10,
        created_at: OffsetDateTime::now_utc(),
        production: None,
        repo: None,
    }
}

pub fn deployment(site: &str) -> Deployment {
    let id = DeploymentId::generate();
    let source = ObjectLocation {
        bucket: Bucket::Source,
        key: format!("uploads/{site}/{id}.zip"),
    };
    Deployment::queued(id, name(site), source, false, OffsetDateTime::now_utc())
}

/// A deployment of `branch` (or of pull request `pr` from it) for its preview target.
pub fn preview_deployment(site: &str, branch: &str, pr: Option<u64>) -> Deployment {
    let mut d = deployment(site);
    let branch = BranchName::parse(branch).unwrap();
    d.target = match pr {
        Some(number) => TargetName::pull_request(number),
        None => TargetName::for_branch(&branch, &d.site),
    };
    d.source = DeploymentSource::Git(GitSource {
        repo: RepoName::parse("acme/docs").unwrap(),
        clone_url: "https://github.com/acme/docs.git".into(),
        sha: CommitSha::parse("4b825dc642cb6eb9a060e54bf8d69288fbee4904").unwrap(),
        branch,
        pull_request: pr,
        root: None,
    });
    d
}

/// Creates `d` and moves it on to publishing.
pub async fn create_published(store: &dyn StateStore, d: &Deployment) {
    store.create_deployment(d).await.unwrap();
    publish(store, d).await;
}

pub async fn publish(store: &dyn StateStore, d: &Deployment) {
    for to in [DeploymentStatus::Building, DeploymentStatus::Publishing] {
        store
            .transition(&d.site, &d.id, to, DeploymentPatch::default())
            .await
            .unwrap();
    }
}

/// Creates the site and `N` deployments of it, oldest first, the first `published` of them
/// moved on to publishing.
pub async fn site_with<const N: usize>(
    store: &dyn StateStore,
    site_name: &str,
    published: usize,
) -> [Deployment; N] {
    store.create_site(&site(site_name)).await.unwrap();
    let created: [Deployment; N] = std::array::from_fn(|_| deployment(site_name));
    for (i, d) in created.iter().enumerate() {
        store.create_deployment(d).await.unwrap();
        if i < published {
            publish(store, d).await;
        }
    }
    created
}

pub async fn status(store: &dyn StateStore, d: &Deployment) -> DeploymentStatus {
    store.get_deployment(&d.site, &d.id).await.unwrap().status
}

async fn activate(store: &dyn StateStore, d: &Deployment, now: OffsetDateTime) -> ActivateOutcome {
    store.activate(&d.site, &d.id, now).await.unwrap()
}

async fn previews(store: &dyn StateStore, site: &str) -> Vec<Preview> {
    store.list_previews(&name(site)).await.unwrap()
}

pub async fn sites_are_unique_and_listed_by_name(store: &dyn StateStore) {
    let docs = site("docs");
    store.create_site(&docs).await.unwrap();
    assert!(matches!(
        store.create_site(&site("docs")).await,
        Err(StateError::SiteExists(n)) if n == docs.name
    ));
    store.create_site(&site("api")).await.unwrap();
    let listed = store.list_sites().await.unwrap();
    let names: Vec<_> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["api", "docs"]);
    assert_eq!(store.get_site(&docs.name).await.unwrap(), docs);
    assert!(matches!(
        store.get_site(&name("nope")).await,
        Err(StateError::SiteNotFound(_))
    ));
}

pub async fn deployments_need_their_site_and_round_trip_exactly(store: &dyn StateStore) {
    let orphan = deployment("nosite");
    assert!(matches!(
        store.create_deployment(&orphan).await,
        Err(StateError::SiteNotFound(_))
    ));
    store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    store.create_deployment(&d).await.unwrap();
    assert_eq!(store.get_deployment(&d.site, &d.id).await.unwrap(), d);
    assert_eq!(store.find_deployment(&d.id).await.unwrap(), d);
    assert!(
        store.create_deployment(&d).await.is_err(),
        "a second create must be refused"
    );
    assert_eq!(store.get_deployment(&d.site, &d.id).await.unwrap(), d);
    let unknown = DeploymentId::generate();
    assert!(matches!(
        store.find_deployment(&unknown).await,
        Err(StateError::DeploymentNotFound(id)) if id == unknown
    ));
    assert!(matches!(
        store.get_deployment(&d.site, &unknown).await,
        Err(StateError::DeploymentNotFound(_))
    ));
}

pub async fn transitions_are_conditional_on_the_lifecycle(store: &dyn StateStore) {
    store.create_site(&site("docs")).await.unwrap();
    let d = deployment("docs");
    store.create_deployment(&d).await.unwrap();
    let err = store
        .transition(
            &d.site,
            &d.id,
            DeploymentStatus::Live,
            DeploymentPatch::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StateError::Lifecycle(LifecycleError::InvalidTransition {
            from: DeploymentStatus::Queued,
            to: DeploymentStatus::Live,
            ..
        })
    ));
    let moved = store
        .transition(
            &d.site,
            &d.id,
            DeploymentStatus::Building,
            DeploymentPatch {
                built: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(moved.built);
    assert_eq!(moved.status, DeploymentStatus::Building);
    assert!(moved.updated_at > d.updated_at);

    // Every patch field lands, and what transition returns is what is stored.
    let patch = DeploymentPatch {
        built: None,
        routing: Some(RoutingFlags {
            spa: true,
            clean_urls: true,
        }),
        error: Some(RecordedError {
            name: "BuildFailed".into(),
            cause: "npm ci exited 1".into(),
        }),
        file_count: Some(42),
        bytes: Some(u64::MAX),
    };
    let failed = store
        .transition(&d.site, &d.id, DeploymentStatus::Failed, patch)
        .await
        .unwrap();
    assert!(failed.built, "an unset patch field keeps its value");
    assert!(failed.routing.spa && failed.routing.clean_urls);
    assert_eq!(failed.error.as_ref().unwrap().name, "BuildFailed");
    assert_eq!(
        (failed.file_count, failed.bytes),
        (Some(42), Some(u64::MAX))
    );
    assert_eq!(failed.activated_at, None);
    assert_eq!(store.get_deployment(&d.site, &d.id).await.unwrap(), failed);

    // A failed deployment cannot fail again, and nothing moves back to queued: both are
    // named with the stored status.
    for to in [DeploymentStatus::Failed, DeploymentStatus::Queued] {
        assert!(matches!(
            store.transition(&d.site, &d.id, to, DeploymentPatch::default()).await,
            Err(StateError::Lifecycle(LifecycleError::InvalidTransition { id, from: DeploymentStatus::Failed, to: t })) if id == d.id && t == to
        ));
    }
    assert!(matches!(
        store.get_deployment(&name("other"), &d.id).await,
        Err(StateError::SiteNotFound(_))
    ));
    let unknown = DeploymentId::generate();
    assert!(matches!(
        store
            .transition(&d.site, &unknown, DeploymentStatus::Building, DeploymentPatch::default())
            .await,
        Err(StateError::DeploymentNotFound(id)) if id == unknown
    ));
}

pub async fn activate_supersedes_the_previous_and_never_moves_backwards(store: &dyn StateStore) {
    let [older, newer, newest] = site_with(store, "docs", 3).await;
    let now = OffsetDateTime::now_utc();
    assert_eq!(
        store.activate(&newer.site, &newer.id, now).await.unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    // The slower, older deploy finishes later: it must not replace the newer one.
    assert_eq!(
        store.activate(&older.site, &older.id, now).await.unwrap(),
        ActivateOutcome::Superseded { newer: newer.id }
    );
    assert_eq!(
        store.activate(&newer.site, &newer.id, now).await.unwrap(),
        ActivateOutcome::AlreadyLive
    );
    // Superseded without ever being live: activating it again is refused, not a panic.
    assert!(matches!(
        store.activate(&older.site, &older.id, now).await,
        Err(StateError::Lifecycle(LifecycleError::InvalidTransition {
            from: DeploymentStatus::Superseded,
            to: DeploymentStatus::Superseded,
            ..
        }))
    ));
    assert_eq!(
        store.activate(&newest.site, &newest.id, now).await.unwrap(),
        ActivateOutcome::Activated {
            previous: Some(newer.id)
        }
    );
    let listed = store.list_deployments(&older.site).await.unwrap();
    let statuses: Vec<_> = listed.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Live,
            DeploymentStatus::Superseded,
            DeploymentStatus::Superseded
        ]
    );
    assert_eq!(listed[0].activated_at, Some(now));
    assert_eq!(listed[2].activated_at, None, "older was never live");
    assert_eq!(
        store.get_site(&newer.site).await.unwrap().live_deployment(),
        Some(newest.id)
    );

    let later = now + time::Duration::seconds(1);
    let back = store
        .move_production(&newer.site, &newer.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(back.status, DeploymentStatus::Live);
    assert_eq!(back.activated_at, Some(later));
    assert_eq!(
        store.get_deployment(&newer.site, &newer.id).await.unwrap(),
        back
    );
    assert_eq!(status(store, &newest).await, DeploymentStatus::RolledBack);
    assert_eq!(
        store.get_site(&newer.site).await.unwrap().live_deployment(),
        Some(newer.id)
    );
    // Routing production to what it serves already changes nothing.
    let same = store
        .move_production(&newer.site, &newer.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(same, back);
    assert_eq!(status(store, &newest).await, DeploymentStatus::RolledBack);
    // Roll forward again to the rolled-back one.
    store
        .move_production(&newest.site, &newest.id, Displaced::RolledBack, later)
        .await
        .unwrap();
    assert_eq!(status(store, &newer).await, DeploymentStatus::RolledBack);
    assert_eq!(status(store, &newest).await, DeploymentStatus::Live);
}

pub async fn concurrent_activations_leave_exactly_the_newest_live(store: &dyn StateStore) {
    for round in 0..8 {
        let [older, newer] = site_with(store, &format!("race{round}"), 2).await;
        let now = OffsetDateTime::now_utc();
        // Alternate who asks first.
        let (older_outcome, newer_outcome) = if round % 2 == 0 {
            tokio::join!(
                store.activate(&older.site, &older.id, now),
                store.activate(&newer.site, &newer.id, now)
            )
        } else {
            let (n, o) = tokio::join!(
                store.activate(&newer.site, &newer.id, now),
                store.activate(&older.site, &older.id, now)
            );
            (o, n)
        };
        let (o, n) = (older_outcome.unwrap(), newer_outcome.unwrap());
        // Either order of commits is fine; both end with the newer one live.
        match (&o, &n) {
            (
                ActivateOutcome::Superseded { newer: id },
                ActivateOutcome::Activated { previous: None },
            ) => {
                assert_eq!(*id, newer.id)
            }
            (
                ActivateOutcome::Activated { previous: None },
                ActivateOutcome::Activated { previous: Some(id) },
            ) => {
                assert_eq!(*id, older.id)
            }
            _ => panic!("round {round}: older {o:?}, newer {n:?}"),
        }
        assert_eq!(
            status(store, &newer).await,
            DeploymentStatus::Live,
            "round {round}"
        );
        assert_eq!(
            status(store, &older).await,
            DeploymentStatus::Superseded,
            "round {round}"
        );
        assert_eq!(
            store.get_site(&newer.site).await.unwrap().live_deployment(),
            Some(newer.id)
        );
        let live = store
            .list_deployments(&newer.site)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.status == DeploymentStatus::Live)
            .count();
        assert_eq!(live, 1);
    }
}

pub async fn live_and_in_flight_deployments_cannot_be_deleted(store: &dyn StateStore) {
    let [old, live, queued] = site_with(store, "docs", 2).await;
    for d in [&old, &live] {
        store
            .activate(&d.site, &d.id, OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    for d in [&live, &queued] {
        assert!(matches!(
            store.delete_deployment(&d.site, &d.id).await,
            Err(StateError::Lifecycle(LifecycleError::InUse { id, .. })) if id == d.id
        ));
        assert!(store.get_deployment(&d.site, &d.id).await.is_ok());
    }

    // A superseded one goes, with its build log.
    store
        .append_log(&old.id, &["npm ci".into(), "done".into()])
        .await
        .unwrap();
    store.delete_deployment(&old.site, &old.id).await.unwrap();
    assert!(matches!(
        store.get_deployment(&old.site, &old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert!(matches!(
        store.find_deployment(&old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert!(store.read_log(&old.id, 0).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_deployment(&old.site, &old.id).await,
        Err(StateError::DeploymentNotFound(_))
    ));
    assert_eq!(store.list_deployments(&live.site).await.unwrap().len(), 2);
}

pub async fn logs_append_in_order_and_read_incrementally(store: &dyn StateStore) {
    let id = DeploymentId::generate();
    store
        .append_log(&id, &["one".into(), "two".into()])
        .await
        .unwrap();
    store.append_log(&id, &["three".into()]).await.unwrap();
    let all = store.read_log(&id, 0).await.unwrap();
    assert_eq!(
        all.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    assert_eq!(all.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let rest = store.read_log(&id, all[1].seq).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].line, "three");
    assert!(store.read_log(&id, u64::MAX).await.unwrap().is_empty());

    // A batch larger than one transaction keeps numbering without gaps, across pages.
    let batch: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    store.append_log(&id, &batch).await.unwrap();
    let all = store.read_log(&id, 0).await.unwrap();
    assert_eq!(all.len(), 253);
    assert!(all.iter().zip(1..).all(|(l, seq)| l.seq == seq));
    assert_eq!(all[252].line, "line 249");
    let tail = store.read_log(&id, 250).await.unwrap();
    assert_eq!(
        tail.iter().map(|l| l.line.as_str()).collect::<Vec<_>>(),
        ["line 247", "line 248", "line 249"]
    );

    // Two writers at once: every line lands exactly once.
    let other = DeploymentId::generate();
    let writers = (0..4).map(|w| async move {
        let lines: Vec<String> = (0..30).map(|i| format!("w{w} {i}")).collect();
        store.append_log(&other, &lines).await
    });
    for result in futures::future::join_all(writers).await {
        result.unwrap();
    }
    let lines = store.read_log(&other, 0).await.unwrap();
    assert_eq!(lines.len(), 120);
    assert!(lines.iter().zip(1..).all(|(l, seq)| l.seq == seq));
    let mut texts: Vec<_> = lines.iter().map(|l| l.line.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 120);
}

pub async fn activating_a_preview_deployment_creates_its_preview_and_leaves_production_alone(
    store: &dyn StateStore,
) {
    let [production] = site_with(store, "docs", 1).await;
    let now = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, now)
        .await
        .unwrap();
    let branch = preview_deployment("docs", "feature/Login", None);
    let pull = preview_deployment("docs", "fix-typo", Some(7));
    for d in [&branch, &pull] {
        create_published(store, d).await;
        assert_eq!(
            store.activate(&d.site, &d.id, now).await.unwrap(),
            ActivateOutcome::Activated { previous: None }
        );
    }

    let listed = previews(store, "docs").await;
    let expected = [
        Preview {
            site: name("docs"),
            target: TargetName::parse("feature-login").unwrap(),
            branch: Some(BranchName::parse("feature/Login").unwrap()),
            pull_request: None,
            traffic: Some(Traffic::all(branch.id)),
            updated_at: now,
            removed_at: None,
        },
        Preview {
            site: name("docs"),
            target: TargetName::parse("pr-7").unwrap(),
            branch: Some(BranchName::parse("fix-typo").unwrap()),
            pull_request: Some(7),
            traffic: Some(Traffic::all(pull.id)),
            updated_at: now,
            removed_at: None,
        },
    ];
    assert_eq!(listed, expected);
    // A preview going live is no production activation: rollback never picks it.
    let live = store
        .get_deployment(&branch.site, &branch.id)
        .await
        .unwrap();
    assert_eq!(live.status, DeploymentStatus::Live);
    assert_eq!(live.activated_at, None);
    let mut expected = branch.clone();
    expected.status = DeploymentStatus::Live;
    expected.updated_at = now;
    assert_eq!(live, expected);
    assert_eq!(
        store.find_deployment(&branch.id).await.unwrap().source,
        branch.source,
        "a git source round-trips"
    );
    assert_eq!(status(store, &production).await, DeploymentStatus::Live);
    assert_eq!(
        store
            .get_site(&name("docs"))
            .await
            .unwrap()
            .live_deployment(),
        Some(production.id)
    );
    // Previews are items of the site's partition, not deployments.
    assert_eq!(
        store.list_deployments(&name("docs")).await.unwrap().len(),
        3
    );
    assert!(matches!(
        store.list_previews(&name("nope")).await,
        Err(StateError::SiteNotFound(_))
    ));
}

pub async fn the_newest_deployment_wins_per_target_independently_of_production(
    store: &dyn StateStore,
) {
    store.create_site(&site("docs")).await.unwrap();
    // Created in this order: ids ascend.
    let older_preview = preview_deployment("docs", "feature", None);
    let production = deployment("docs");
    let newer_preview = preview_deployment("docs", "feature", None);
    let other_preview = preview_deployment("docs", "other", Some(3));
    let newer_production = deployment("docs");
    for d in [
        &older_preview,
        &production,
        &newer_preview,
        &other_preview,
        &newer_production,
    ] {
        create_published(store, d).await;
    }
    let now = OffsetDateTime::now_utc();

    assert_eq!(
        activate(store, &newer_preview, now).await,
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(
        activate(store, &older_preview, now).await,
        ActivateOutcome::Superseded {
            newer: newer_preview.id
        }
    );
    // A newer preview deployment does not hold production back, nor the other way round.
    assert_eq!(
        activate(store, &production, now).await,
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(
        activate(store, &newer_production, now).await,
        ActivateOutcome::Activated {
            previous: Some(production.id)
        }
    );
    assert_eq!(
        activate(store, &other_preview, now).await,
        ActivateOutcome::Activated { previous: None }
    );

    assert_eq!(
        status(store, &older_preview).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(status(store, &newer_preview).await, DeploymentStatus::Live);
    assert_eq!(
        status(store, &production).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(
        status(store, &newer_production).await,
        DeploymentStatus::Live
    );
    assert_eq!(status(store, &other_preview).await, DeploymentStatus::Live);
    assert_eq!(
        store
            .get_site(&name("docs"))
            .await
            .unwrap()
            .live_deployment(),
        Some(newer_production.id)
    );
    let live: Vec<_> = previews(store, "docs")
        .await
        .into_iter()
        .map(|p| (p.target.to_string(), p.live_deployment()))
        .collect();
    assert_eq!(
        live,
        [
            ("feature".to_owned(), Some(newer_preview.id)),
            ("pr-3".to_owned(), Some(other_preview.id)),
        ]
    );
}

pub async fn promote_keeps_the_preview_deployment_live_and_supersedes_production(
    store: &dyn StateStore,
) {
    store.create_site(&site("docs")).await.unwrap();
    let production = deployment("docs");
    let slower_production = deployment("docs");
    let preview = preview_deployment("docs", "redesign", None);
    let later_production = deployment("docs");
    for d in [&production, &slower_production, &preview, &later_production] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, t0)
        .await
        .unwrap();
    store
        .activate(&preview.site, &preview.id, t0)
        .await
        .unwrap();

    // Promote: production serves the preview's deployment.
    let t1 = t0 + time::Duration::seconds(1);
    let promoted = store
        .move_production(&preview.site, &preview.id, Displaced::Superseded, t1)
        .await
        .unwrap();
    assert_eq!(
        promoted.status,
        DeploymentStatus::Live,
        "it stays live on its preview"
    );
    assert_eq!(promoted.activated_at, Some(t1));
    assert_eq!(
        store
            .get_deployment(&preview.site, &preview.id)
            .await
            .unwrap(),
        promoted
    );
    assert_eq!(
        status(store, &production).await,
        DeploymentStatus::Superseded
    );
    assert_eq!(
        store
            .get_site(&name("docs"))
            .await
            .unwrap()
            .live_deployment(),
        Some(preview.id)
    );
    assert_eq!(
        previews(store, "docs").await[0].live_deployment(),
        Some(preview.id)
    );

    // A production deploy older than the promoted deployment loses to it; a newer one
    // takes production back and leaves the preview as it is.
    assert_eq!(
        store
            .activate(&slower_production.site, &slower_production.id, t1)
            .await
            .unwrap(),
        ActivateOutcome::Superseded { newer: preview.id }
    );
    let t2 = t1 + time::Duration::seconds(1);
    assert_eq!(
        store
            .activate(&later_production.site, &later_production.id, t2)
            .await
            .unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    assert_eq!(status(store, &preview).await, DeploymentStatus::Live);
    assert_eq!(
        store
            .get_site(&name("docs"))
            .await
            .unwrap()
            .live_deployment(),
        Some(later_production.id)
    );
}

pub async fn rollback_after_a_promote_returns_to_the_production_deployment_before_it(
    store: &dyn StateStore,
) {
    store.create_site(&site("docs")).await.unwrap();
    let production = deployment("docs");
    let preview = preview_deployment("docs", "redesign", Some(12));
    for d in [&production, &preview] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store
        .activate(&production.site, &production.id, t0)
        .await
        .unwrap();
    store
        .activate(&preview.site, &preview.id, t0)
        .await
        .unwrap();
    let t1 = t0 + time::Duration::seconds(1);
    store
        .move_production(&preview.site, &preview.id, Displaced::Superseded, t1)
        .await
        .unwrap();

    let deployments = store.list_deployments(&name("docs")).await.unwrap();
    let candidate = rollback_candidate(&deployments, Some(preview.id)).unwrap();
    assert_eq!(candidate.id, production.id);
    let t2 = t1 + time::Duration::seconds(1);
    let back = store
        .move_production(&production.site, &production.id, Displaced::RolledBack, t2)
        .await
        .unwrap();

    assert_eq!(back.status, DeploymentStatus::Live);
    assert_eq!(back.activated_at, Some(t2));
    // The promoted deployment is not production's: it stays live on its preview.
    assert_eq!(status(store, &preview).await, DeploymentStatus::Live);
    assert_eq!(
        store
            .get_site(&name("docs"))
            .await
            .unwrap()
            .live_deployment(),
        Some(production.id)
    );
    assert_eq!(
        previews(store, "docs").await[0].live_deployment(),
        Some(preview.id)
    );
    // Routing production to a deployment that never published is refused, changing nothing.
    let unpublished = deployment("docs");
    store.create_deployment(&unpublished).await.unwrap();
    assert!(matches!(
        store
            .move_production(
                &unpublished.site,
                &unpublished.id,
                Displaced::RolledBack,
                t2
            )
            .await,
        Err(StateError::Lifecycle(LifecycleError::InvalidTransition {
            from: DeploymentStatus::Queued,
            to: DeploymentStatus::Live,
            ..
        }))
    ));
    assert_eq!(status(store, &production).await, DeploymentStatus::Live);
}

pub async fn a_removed_preview_refuses_deployments_made_before_its_removal(store: &dyn StateStore) {
    store.create_site(&site("docs")).await.unwrap();
    let live = preview_deployment("docs", "feature", None);
    let late = preview_deployment("docs", "feature", None);
    for d in [&live, &late] {
        create_published(store, d).await;
    }
    let t0 = OffsetDateTime::now_utc();
    store.activate(&live.site, &live.id, t0).await.unwrap();
    let target = live.target.clone();

    let removed_at = OffsetDateTime::now_utc();
    let before = store
        .remove_preview(&name("docs"), &target, removed_at)
        .await
        .unwrap()
        .expect("the preview existed");
    assert_eq!(before.live_deployment(), Some(live.id));
    assert_eq!(before.removed_at, None);
    assert_eq!(status(store, &live).await, DeploymentStatus::Superseded);
    let tombstone = &previews(store, "docs").await[0];
    assert_eq!(tombstone.live_deployment(), None);
    assert_eq!(tombstone.removed_at, Some(removed_at));
    assert_eq!(tombstone.updated_at, removed_at);

    // A build that was still running when the branch went away finishes: it never goes live.
    assert_eq!(
        store
            .activate(&late.site, &late.id, removed_at)
            .await
            .unwrap(),
        ActivateOutcome::TargetRemoved
    );
    assert_eq!(status(store, &late).await, DeploymentStatus::Superseded);
    assert_eq!(previews(store, "docs").await[0], *tombstone);

    // The branch is pushed again: a deployment made after the removal brings it back.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = preview_deployment("docs", "feature", None);
    create_published(store, &again).await;
    let t1 = removed_at + time::Duration::seconds(1);
    assert_eq!(
        store.activate(&again.site, &again.id, t1).await.unwrap(),
        ActivateOutcome::Activated { previous: None }
    );
    let revived = &previews(store, "docs").await[0];
    assert_eq!(revived.live_deployment(), Some(again.id));
    assert_eq!(revived.removed_at, None);
    assert_eq!(revived.updated_at, t1);

    // Removing a preview that never went live leaves a tombstone too.
    let closed = TargetName::pull_request(99);
    assert_eq!(
        store
            .remove_preview(&name("docs"), &closed, t1)
            .await
            .unwrap(),
        None
    );
    let listed = previews(store, "docs").await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].target, closed);
    assert_eq!(listed[1].removed_at, Some(t1));
    assert!(matches!(
        store.remove_preview(&name("nope"), &closed, t1).await,
        Err(StateError::SiteNotFound(_))
    ));
}

pub async fn concurrent_activations_of_a_new_preview_leave_exactly_the_newest_live(
    store: &dyn StateStore,
) {
    store.create_site(&site("docs")).await.unwrap();
    for round in 0..6 {
        // A fresh target each round, so both race to create its record.
        let branch = format!("race-{round}");
        let older = preview_deployment("docs", &branch, None);
        let newer = preview_deployment("docs", &branch, None);
        for d in [&older, &newer] {
            create_published(store, d).await;
        }
        let now = OffsetDateTime::now_utc();
        let (o, n) = if round % 2 == 0 {
            tokio::join!(
                store.activate(&older.site, &older.id, now),
                store.activate(&newer.site, &newer.id, now)
            )
        } else {
            let (n, o) = tokio::join!(
                store.activate(&newer.site, &newer.id, now),
                store.activate(&older.site, &older.id, now)
            );
            (o, n)
        };
        // Either order of commits is fine; both end with the newer one live.
        match (o.unwrap(), n.unwrap()) {
            (
                ActivateOutcome::Superseded { newer: id },
                ActivateOutcome::Activated { previous: None },
            ) => assert_eq!(id, newer.id, "round {round}"),
            (
                ActivateOutcome::Activated { previous: None },
                ActivateOutcome::Activated { previous: Some(id) },
            ) => assert_eq!(id, older.id, "round {round}"),
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(
            status(store, &newer).await,
            DeploymentStatus::Live,
            "round {round}"
        );
        assert_eq!(
            status(store, &older).await,
            DeploymentStatus::Superseded,
            "round {round}"
        );
        let preview = previews(store, "docs")
            .await
            .into_iter()
            .find(|p| p.target == newer.target)
            .unwrap();
        assert_eq!(preview.live_deployment(), Some(newer.id), "round {round}");
    }
}

pub async fn webhook_deliveries_are_recorded_once_until_they_expire(store: &dyn StateStore) {
    let delivery = unique("delivery");
    let hour = OffsetDateTime::now_utc() + time::Duration::hours(1);

    assert!(store.record_delivery(&delivery, hour).await.unwrap());
    assert!(
        !store.record_delivery(&delivery, hour).await.unwrap(),
        "a redelivery"
    );
    let other = unique("delivery");
    assert!(store.record_delivery(&other, hour).await.unwrap());

    // An expired record that TTL has not deleted yet is taken over.
    let expired = unique("delivery");
    let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    assert!(store.record_delivery(&expired, past).await.unwrap());
    assert!(store.record_delivery(&expired, hour).await.unwrap());
    assert!(!store.record_delivery(&expired, hour).await.unwrap());

    // A delivery whose handling failed is forgotten, so its redelivery is handled.
    store.forget_delivery(&expired).await.unwrap();
    assert!(store.record_delivery(&expired, hour).await.unwrap());
}

/// A service of `site` with every setting given (stored times have whole seconds).
pub fn service(site: &str, name: &str) -> Service {
    let created_at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    Service {
        site: SiteName::parse(site).unwrap(),
        name: ServiceName::parse(name).unwrap(),
        settings: ServiceSettings::new(
            Some(Runtime::parse("python3.12").unwrap()),
            Some("app/main.handler"),
            MemoryMb::try_from(256).unwrap(),
            TimeoutSeconds::try_from(10).unwrap(),
            Concurrency::try_from(4).unwrap(),
        )
        .unwrap(),
        route: Some(ApiRoute::parse(&format!("/api/{name}")).unwrap()),
        created_at,
        production: None,
    }
}

pub async fn services_belong_to_an_existing_site_and_round_trip_exactly(store: &dyn StateStore) {
    let docs = site(&unique("docs"));
    let site_name = docs.name.to_string();
    let api = service(&site_name, "api");
    assert!(matches!(
        store.create_service(&api).await,
        Err(StateError::SiteNotFound(_))
    ));
    store.create_site(&docs).await.unwrap();
    store.create_service(&api).await.unwrap();
    assert!(matches!(
        store.create_service(&service(&site_name, "api")).await,
        Err(StateError::ServiceExists { service, .. }) if service == api.name
    ));
    let bare = Service {
        settings: ServiceSettings::new(
            None,
            None,
            MemoryMb::DEFAULT,
            TimeoutSeconds::DEFAULT,
            Concurrency::DEFAULT,
        )
        .unwrap(),
        route: None,
        ..service(&site_name, "auth")
    };
    store.create_service(&bare).await.unwrap();

    assert_eq!(store.get_service(&docs.name, &api.name).await.unwrap(), api);
    assert_eq!(
        store.get_service(&docs.name, &bare.name).await.unwrap(),
        bare
    );
    let listed = store.list_services(&docs.name).await.unwrap();
    assert_eq!(listed, [api.clone(), bare]);
    assert!(matches!(
        store
            .get_service(&docs.name, &ServiceName::parse("nope").unwrap())
            .await,
        Err(StateError::ServiceNotFound { .. })
    ));
    let unknown = name(&unique("gone"));
    assert!(matches!(
        store.get_service(&unknown, &api.name).await,
        Err(StateError::SiteNotFound(_))
    ));
    assert!(matches!(
        store.list_services(&unknown).await,
        Err(StateError::SiteNotFound(_))
    ));
    // The same name on another site is another service.
    let blog = site(&unique("blog"));
    store.create_site(&blog).await.unwrap();
    store
        .create_service(&service(blog.name.as_str(), "api"))
        .await
        .unwrap();
    assert_eq!(store.list_services(&docs.name).await.unwrap().len(), 2);
}

pub async fn deleting_a_service_removes_only_that_service(store: &dyn StateStore) {
    let docs = site(&unique("docs"));
    store.create_site(&docs).await.unwrap();
    let site_name = docs.name.to_string();
    let (api, auth) = (service(&site_name, "api"), service(&site_name, "auth"));
    store.create_service(&api).await.unwrap();
    store.create_service(&auth).await.unwrap();

    store.delete_service(&docs.name, &api.name).await.unwrap();
    assert!(matches!(
        store.get_service(&docs.name, &api.name).await,
        Err(StateError::ServiceNotFound { .. })
    ));
    assert_eq!(store.list_services(&docs.name).await.unwrap(), [auth]);
    assert!(matches!(
        store.delete_service(&docs.name, &api.name).await,
        Err(StateError::ServiceNotFound { .. })
    ));
    assert!(matches!(
        store
            .delete_service(&name(&unique("gone")), &api.name)
            .await,
        Err(StateError::SiteNotFound(_))
    ));
    // The site and its other records stay.
    assert_eq!(store.get_site(&docs.name).await.unwrap(), docs);
    store.create_service(&api).await.unwrap();
}
