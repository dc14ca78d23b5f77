//! Herald's operations surface: the web dashboard an application can mount (or `herald
//! dashboard` serves), and the formatting the `herald` CLI shares with it. Both read and act
//! through the runtime's operations API (`herald::ops`, `Store::lane_stats`, …), never around
//! it.

pub mod dashboard;
pub mod format;
