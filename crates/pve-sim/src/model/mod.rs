//! The simulated cluster: containers, tasks, faults and the request log.

mod ct;
mod faults;
mod state;
mod task;
mod views;

pub(crate) use ct::{Ct, Power};
pub(crate) use faults::{DropRule, FaultState};
pub(crate) use state::State;
pub(crate) use task::{Effect, Task};
pub use views::{ContainerView, RequestLog, TaskView};
