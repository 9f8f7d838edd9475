//! Executes state machines against a scripted invoker and checks the results against the
//! Amazon States Language specification. Time-dependent tests run on tokio's paused clock.

mod support;

mod catch;
mod choice;
mod fail_and_limits;
mod paths;
mod retry;
mod wait;
