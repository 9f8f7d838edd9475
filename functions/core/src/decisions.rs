//! The lifecycle's decisions, as pure functions of the records they read: activation (a newer
//! deployment wins, removed previews stay removed), routing production (rollback, promote),
//! removing a preview, and deleting a deployment's record.
//!
//! A store runs a [`Decision`] through [`decide`]: it starts a [`Snapshot`] with the site's
//! record, loads each record [`decide`] asks for ([`Need`]), and applies the [`Plan`] it
//! finally returns in one transaction, conditional on every record of the snapshot being as
//! read (DynamoDB), or inside one serializable transaction (SQLite). On a lost race it reads
//! again and decides anew. So the rules exist once, here, and every store passes the same
//! contract suite (`slipway-testkit`'s `state_store_contract!`).

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::model::{Deployment, DeploymentStatus, LifecycleError, Preview, Site, Traffic};
use crate::names::{DeploymentId, SiteName, TargetName};

/// What a store is asked to change on one site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Make a published deployment serve its target (production, or its preview, whose
    /// record is created when missing) and supersede what the target served, unless a newer
    /// deployment serves it already or the preview was removed after the deployment was made.
    Activate {
        id: DeploymentId,
        now: OffsetDateTime,
    },
    /// Production serves `to` (rollback, roll forward or promote). The production deployment
    /// it served before becomes `displaced`; a preview deployment keeps its status.
    MoveProduction {
        to: DeploymentId,
        displaced: Displaced,
        now: OffsetDateTime,
    },
    /// Mark a preview removed (creating its tombstone when missing) and supersede what it
    /// served.
    RemovePreview {
        target: TargetName,
        now: OffsetDateTime,
    },
    /// Delete a finished deployment's record, unless it serves or is routed to.
    DeleteDeployment { id: DeploymentId },
}

/// What a committed [`Decision`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Activated(ActivateOutcome),
    /// The deployment production serves now, as written.
    Routed(Deployment),
    /// The preview as it was before, if it existed.
    PreviewRemoved(Option<Preview>),
    Deleted,
}

/// What Activate's transaction decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivateOutcome {
    /// This deployment is now live on its target; `previous` (if any) is superseded.
    Activated { previous: Option<DeploymentId> },
    /// It was already live (Activate re-ran after a crash).
    AlreadyLive,
    /// A newer deployment of the same target is live; this one is superseded and never served.
    Superseded { newer: DeploymentId },
    /// Its preview was removed (branch deleted, pull request closed) after it was created:
    /// it is superseded and the preview stays gone.
    TargetRemoved,
}

/// What happens to the deployment production served before a repoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Displaced {
    /// A rollback: it becomes `rolled-back`.
    RolledBack,
    /// A promote: it becomes `superseded`, as if a newer deploy had replaced it.
    Superseded,
}

impl Displaced {
    pub fn status(self) -> DeploymentStatus {
        match self {
            Displaced::RolledBack => DeploymentStatus::RolledBack,
            Displaced::Superseded => DeploymentStatus::Superseded,
        }
    }
}

/// The records a decision has read, exactly as the store read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub site: Site,
    pub deployments: BTreeMap<DeploymentId, Deployment>,
    /// Preview records by target; `None` when the store has none.
    pub previews: BTreeMap<TargetName, Option<Preview>>,
}

impl Snapshot {
    pub fn new(site: Site) -> Self {
        Self {
            site,
            deployments: BTreeMap::new(),
            previews: BTreeMap::new(),
        }
    }

    /// Adds a record [`decide`] asked for.
    pub fn insert_deployment(&mut self, deployment: Deployment) {
        self.deployments.insert(deployment.id, deployment);
    }

    pub fn insert_preview(&mut self, target: TargetName, preview: Option<Preview>) {
        self.previews.insert(target, preview);
    }
}

/// A record [`decide`] must see before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A deployment of the snapshot's site; a missing one is `DeploymentNotFound`.
    Deployment(DeploymentId),
    /// A preview record of the snapshot's site, or its absence.
    Preview(TargetName),
}

/// The writes a decision makes. Every record is written whole; each is a record of the
/// snapshot (or a preview the snapshot saw missing), and the store writes them only if the
/// snapshot is still what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub site: Option<Site>,
    pub deployments: Vec<Deployment>,
    pub previews: Vec<Preview>,
    /// Deployment records to delete (with their build logs).
    pub deletes: Vec<DeploymentId>,
    pub outcome: Outcome,
}

impl Plan {
    fn only(outcome: Outcome) -> Self {
        Self {
            site: None,
            deployments: Vec::new(),
            previews: Vec::new(),
            deletes: Vec::new(),
            outcome,
        }
    }

    /// Writes nothing: the decision was made already.
    pub fn is_empty(&self) -> bool {
        self.site.is_none()
            && self.deployments.is_empty()
            && self.previews.is_empty()
            && self.deletes.is_empty()
    }
}

/// The next step of a decision: read one more record, or apply the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Read(Need),
    Apply(Box<Plan>),
}

/// Decides `decision` from `snapshot`, or names the record it still needs.
pub fn decide(decision: &Decision, snapshot: &Snapshot) -> Result<Step, LifecycleError> {
    let reader = Reader { snapshot };
    let result = match decision {
        Decision::Activate { id, now } => activate(&reader, *id, *now),
        Decision::MoveProduction { to, displaced, now } => {
            move_production(&reader, *to, *displaced, *now)
        }
        Decision::RemovePreview { target, now } => remove_preview(&reader, target, *now),
        Decision::DeleteDeployment { id } => delete_deployment(&reader, *id),
    };
    match result {
        Ok(plan) => Ok(Step::Apply(Box::new(plan))),
        Err(Missing::Need(need)) => Ok(Step::Read(need)),
        Err(Missing::Refused(e)) => Err(e),
    }
}

/// Why a decision stopped: it needs a record the snapshot lacks, or the lifecycle refuses.
enum Missing {
    Need(Need),
    Refused(LifecycleError),
}

impl From<LifecycleError> for Missing {
    fn from(e: LifecycleError) -> Self {
        Missing::Refused(e)
    }
}

/// Reads records from the snapshot, stopping the decision at the first one it lacks.
struct Reader<'a> {
    snapshot: &'a Snapshot,
}

impl Reader<'_> {
    fn site(&self) -> &Site {
        &self.snapshot.site
    }

    fn deployment(&self, id: DeploymentId) -> Result<Deployment, Missing> {
        self.snapshot
            .deployments
            .get(&id)
            .cloned()
            .ok_or(Missing::Need(Need::Deployment(id)))
    }

    fn preview(&self, target: &TargetName) -> Result<Option<Preview>, Missing> {
        self.snapshot
            .previews
            .get(target)
            .cloned()
            .ok_or_else(|| Missing::Need(Need::Preview(target.clone())))
    }

    /// What `target` serves, with the preview record it is read from (or a new one).
    fn target(
        &self,
        site: &SiteName,
        target: &TargetName,
        now: OffsetDateTime,
    ) -> Result<TargetTraffic, Missing> {
        if target.is_production() {
            return Ok(TargetTraffic::Production(self.site().production));
        }
        let preview = self
            .preview(target)?
            .unwrap_or_else(|| Preview::empty(site.clone(), target.clone(), now));
        Ok(TargetTraffic::Preview(preview))
    }
}

/// Where a target records what it serves.
enum TargetTraffic {
    Production(Option<Traffic>),
    Preview(Preview),
}

impl TargetTraffic {
    fn traffic(&self) -> Option<Traffic> {
        match self {
            TargetTraffic::Production(traffic) => *traffic,
            TargetTraffic::Preview(preview) => preview.traffic,
        }
    }
}

fn activate(r: &Reader<'_>, id: DeploymentId, now: OffsetDateTime) -> Result<Plan, Missing> {
    let mut deployment = r.deployment(id)?;
    if deployment.status == DeploymentStatus::Live {
        return Ok(Plan::only(Outcome::Activated(ActivateOutcome::AlreadyLive)));
    }
    let target = deployment.target.clone();
    let pointer = r.target(&deployment.site, &target, now)?;
    let mut plan = Plan::only(Outcome::Activated(ActivateOutcome::TargetRemoved));
    if let TargetTraffic::Preview(preview) = &pointer {
        if !preview.accepts(&id) {
            deployment.move_to(DeploymentStatus::Superseded, now)?;
            plan.deployments.push(deployment);
            return Ok(plan);
        }
    }
    let current = pointer.traffic();
    // A newer deployment serves the target already: never move backwards.
    if let Some(newer) = current.map(|t| t.newest()).filter(|live| *live > id) {
        deployment.move_to(DeploymentStatus::Superseded, now)?;
        plan.deployments.push(deployment);
        plan.outcome = Outcome::Activated(ActivateOutcome::Superseded { newer });
        return Ok(plan);
    }
    deployment.move_to(DeploymentStatus::Live, now)?;
    let mut previous = None;
    for served in current.iter().flat_map(Traffic::deployments) {
        if served == id {
            continue;
        }
        let mut before = r.deployment(served)?;
        // Only a deployment of this target leaves `live`: a promoted preview deployment
        // displaced from production stays live on its preview.
        if before.target == target && before.status.is_serving() {
            before.move_to(DeploymentStatus::Superseded, now)?;
            previous = Some(served);
            plan.deployments.push(before);
        }
    }
    match pointer {
        TargetTraffic::Production(_) => {
            let mut site = r.site().clone();
            site.production = Some(Traffic::all(id));
            plan.site = Some(site);
        }
        TargetTraffic::Preview(mut preview) => {
            preview.serve(&deployment, now);
            plan.previews.push(preview);
        }
    }
    plan.deployments.insert(0, deployment);
    plan.outcome = Outcome::Activated(ActivateOutcome::Activated { previous });
    Ok(plan)
}

fn move_production(
    r: &Reader<'_>,
    to: DeploymentId,
    displaced: Displaced,
    now: OffsetDateTime,
) -> Result<Plan, Missing> {
    let mut routed = r.deployment(to)?;
    if !routed.status.is_servable() {
        return Err(LifecycleError::InvalidTransition {
            id: to,
            from: routed.status,
            to: DeploymentStatus::Live,
        }
        .into());
    }
    let mut deployments = Vec::new();
    let served = r.site().production;
    for live in served.iter().flat_map(Traffic::deployments) {
        if live == to {
            continue;
        }
        let mut before = r.deployment(live)?;
        // A promoted preview deployment stays live on its preview.
        if before.target.is_production() && before.status.is_serving() {
            before.move_to(displaced.status(), now)?;
            deployments.push(before);
        }
    }
    if !routed.target.is_production() {
        routed.activated_at = Some(now);
        routed.updated_at = now;
        deployments.push(routed.clone());
    } else if routed.status != DeploymentStatus::Live {
        routed.move_to(DeploymentStatus::Live, now)?;
        deployments.push(routed.clone());
    }
    let mut site = r.site().clone();
    site.production = Some(Traffic::all(to));
    Ok(Plan {
        site: Some(site),
        deployments,
        previews: Vec::new(),
        deletes: Vec::new(),
        outcome: Outcome::Routed(routed),
    })
}

fn remove_preview(
    r: &Reader<'_>,
    target: &TargetName,
    now: OffsetDateTime,
) -> Result<Plan, Missing> {
    let existing = r.preview(target)?;
    let mut tombstone = existing
        .clone()
        .unwrap_or_else(|| Preview::empty(r.site().name.clone(), target.clone(), now));
    let mut plan = Plan::only(Outcome::PreviewRemoved(existing));
    for served in tombstone
        .traffic
        .take()
        .iter()
        .flat_map(Traffic::deployments)
    {
        let mut before = r.deployment(served)?;
        if before.status.is_serving() {
            before.move_to(DeploymentStatus::Superseded, now)?;
            plan.deployments.push(before);
        }
    }
    tombstone.removed_at = Some(now);
    tombstone.updated_at = now;
    plan.previews.push(tombstone);
    Ok(plan)
}

fn delete_deployment(r: &Reader<'_>, id: DeploymentId) -> Result<Plan, Missing> {
    let deployment = r.deployment(id)?;
    let routed = r.site().production.is_some_and(|t| t.serves(id));
    if routed || !deployment.status.is_terminal() || deployment.status.is_serving() {
        return Err(LifecycleError::InUse {
            id,
            status: deployment.status,
        }
        .into());
    }
    let mut plan = Plan::only(Outcome::Deleted);
    plan.deletes.push(id);
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bucket;
    use crate::model::{Canary, CanaryWeight, ObjectLocation, RoutingFlags};

    fn site(production: Option<Traffic>) -> Site {
        Site {
            name: SiteName::parse("docs").unwrap(),
            routing: RoutingFlags::default(),
            retain: 10,
            created_at: OffsetDateTime::UNIX_EPOCH,
            production,
            repo: None,
        }
    }

    fn published() -> Deployment {
        let id = DeploymentId::generate();
        let source = ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/docs/{id}.zip"),
        };
        let mut d = Deployment::queued(
            id,
            SiteName::parse("docs").unwrap(),
            source,
            false,
            OffsetDateTime::UNIX_EPOCH,
        );
        d.status = DeploymentStatus::Publishing;
        d
    }

    /// Runs `decision` the way a store does, answering each need from `records`.
    fn run(decision: &Decision, mut snapshot: Snapshot, records: &[Deployment]) -> Plan {
        loop {
            match decide(decision, &snapshot).unwrap() {
                Step::Read(Need::Deployment(id)) => {
                    let found = records.iter().find(|d| d.id == id).expect("a known record");
                    snapshot.insert_deployment(found.clone());
                }
                Step::Read(Need::Preview(target)) => snapshot.insert_preview(target, None),
                Step::Apply(plan) => return *plan,
            }
        }
    }

    #[test]
    fn activation_reads_only_the_records_it_decides_from() {
        let older = {
            let mut d = published();
            d.status = DeploymentStatus::Live;
            d
        };
        let newer = published();
        let now = OffsetDateTime::now_utc();
        let decision = Decision::Activate { id: newer.id, now };
        let mut snapshot = Snapshot::new(site(Some(Traffic::all(older.id))));
        assert_eq!(
            decide(&decision, &snapshot).unwrap(),
            Step::Read(Need::Deployment(newer.id))
        );
        snapshot.insert_deployment(newer.clone());
        assert_eq!(
            decide(&decision, &snapshot).unwrap(),
            Step::Read(Need::Deployment(older.id)),
            "what production served leaves live"
        );
        let plan = run(&decision, snapshot, &[older.clone(), newer.clone()]);
        assert_eq!(
            plan.outcome,
            Outcome::Activated(ActivateOutcome::Activated {
                previous: Some(older.id)
            })
        );
        let statuses: Vec<_> = plan.deployments.iter().map(|d| (d.id, d.status)).collect();
        assert_eq!(
            statuses,
            [
                (newer.id, DeploymentStatus::Live),
                (older.id, DeploymentStatus::Superseded)
            ]
        );
        assert_eq!(plan.site.unwrap().production, Some(Traffic::all(newer.id)));
    }

    #[test]
    fn a_newer_canary_holds_an_older_deploy_back() {
        let (stable, older, canary) = (published(), published(), published());
        let traffic = Traffic {
            stable: stable.id,
            canary: Some(Canary {
                deployment: canary.id,
                weight: CanaryWeight::try_from(10).unwrap(),
            }),
        };
        let now = OffsetDateTime::now_utc();
        let plan = run(
            &Decision::Activate { id: older.id, now },
            Snapshot::new(site(Some(traffic))),
            &[stable, older.clone(), canary.clone()],
        );
        assert_eq!(
            plan.outcome,
            Outcome::Activated(ActivateOutcome::Superseded { newer: canary.id })
        );
        assert_eq!(plan.site, None, "production's traffic is untouched");
        assert_eq!(plan.deployments[0].status, DeploymentStatus::Superseded);
    }

    #[test]
    fn a_deployment_a_canary_serves_is_never_deleted() {
        let (stable, mut canary) = (published(), published());
        canary.status = DeploymentStatus::Canary;
        let traffic = Traffic {
            stable: stable.id,
            canary: Some(Canary {
                deployment: canary.id,
                weight: CanaryWeight::try_from(50).unwrap(),
            }),
        };
        let mut snapshot = Snapshot::new(site(Some(traffic)));
        snapshot.insert_deployment(canary.clone());
        assert_eq!(
            decide(&Decision::DeleteDeployment { id: canary.id }, &snapshot),
            Err(LifecycleError::InUse {
                id: canary.id,
                status: DeploymentStatus::Canary
            })
        );
    }

    #[test]
    fn canary_weights_are_percentages_strictly_between_none_and_all() {
        assert!(CanaryWeight::try_from(0).is_err());
        assert!(CanaryWeight::try_from(100).is_err());
        assert_eq!(CanaryWeight::try_from(1).unwrap().percent(), 1);
        assert!(serde_json::from_str::<CanaryWeight>("100").is_err());
    }
}
