//! Stand-ins for AWS front doors the emulators lack, which check requests as AWS does.

pub mod kvs_server;
pub mod signature_check;
