//! The simulated cluster: containers, HA resources, tasks, faults and the
//! request log.

mod ct;
mod faults;
mod ha;
mod net;
mod state;
mod task;
mod views;

pub(crate) use ct::{Ct, Power};
pub(crate) use faults::{DropRule, FaultState};
pub(crate) use ha::{HaResource, HaResources, ha_digest};
pub(crate) use net::{Cidr4, interfaces};
pub(crate) use state::State;
pub(crate) use task::{Effect, Task};
pub use views::{ContainerView, HaResourceView, RequestLog, TaskView};
