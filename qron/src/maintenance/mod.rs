//! Maintenance: the [`rescuer`] of expired leases, the [`history`]'s partitions, and the
//! watch for executors no worker serves ([`unserved`]).

pub(crate) mod history;
pub(crate) mod rescuer;
pub(crate) mod unserved;
