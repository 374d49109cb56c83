//! Maintenance: the [`rescuer`] of expired leases, the [`history`]'s partitions, the watch for
//! executors no worker serves ([`unserved`]), and the [`queue`] gauges.

pub(crate) mod history;
pub(crate) mod queue;
pub(crate) mod rescuer;
pub(crate) mod unserved;
