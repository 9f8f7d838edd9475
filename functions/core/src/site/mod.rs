//! What only sites need: how a source becomes a build (`build_plan`), reading hostile zips
//! (`zipsafe`) where they lie (`ranged`), the headers published files are served with
//! (`headers`), and where a site answers at the edge (`edge`: host names, the key-value
//! store's values, and sites' traffic switch). The lifecycle of a deployment (decisions,
//! ports, steps) is not here: a backend service brings its own module beside this one.

pub mod build_plan;
pub mod edge;
pub mod headers;
pub mod ranged;
pub mod zipsafe;
