//! The scenarios, numbered as in the README's Performance table.

mod deploy;
mod dev;
mod load;

mod hosting;
mod lambda;
pub mod memory;
mod prune;
mod publish;
mod router;

use crate::context::Bench;
use crate::report::Row;

/// Every scenario, in order: number and name.
pub const ALL: &[(u8, &str)] = &[
    (1, "Publish throughput"),
    (2, "Prune"),
    (3, "Prebuilt deploy, end to end"),
    (4, "Rollback, end to end"),
    (5, "Edge router"),
    (6, "Lambda footprint"),
    (7, "Memory"),
    (8, "API under load"),
];

pub async fn run(number: u8, bench: &Bench) -> anyhow::Result<Vec<Row>> {
    match number {
        1 => publish::run(bench).await,
        2 => prune::run(bench).await,
        3 => deploy::run_deploy(bench).await,
        4 => deploy::run_rollback(bench).await,
        5 => router::run(bench).await,
        6 => lambda::run(bench).await,
        7 => memory::run(bench).await,
        8 => load::run(bench).await,
        _ => anyhow::bail!("scenario {number} is not written yet ({bench:p})"),
    }
}
