//! Maintenance: the [`rescuer`] of expired leases and the [`history`]'s partitions.

pub(crate) mod history;
pub(crate) mod rescuer;
