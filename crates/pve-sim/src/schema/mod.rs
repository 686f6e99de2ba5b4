//! The PVE API schema (pve-docs `apidata`, PVE 9.1) and parameter
//! verification that follows `PVE::JSONSchema::check_prop`.
//!
//! The whole `api-viewer/apidata.js` tree of pve-docs 9.1.3 is embedded as
//! `schema/pve-apidata-9.1.json` (AGPL-3.0, like Tenantry). Every request's
//! path is looked up in it; a path/method it does not list answers 501, and
//! the parameters of one it lists are checked against its `parameters`
//! schema, so what the simulator accepts is what PVE's schema accepts.
//!
//! Messages are PVE's own (`pve-common/src/PVE/JSONSchema.pm`):
//! `property is not defined in schema and the schema does not allow
//! additional properties`, `type check ('integer') failed - got 'abc'`,
//! `value must have a minimum value of 16`, `property is missing and it is
//! not optional`, `value '…' does not have a value in the enumeration '…'`,
//! `invalid format - …`.

mod apidata;
mod format;
mod params;
#[cfg(test)]
mod tests;

pub use apidata::{APIDATA, Matched, Schema, schema};
pub use format::{format_size, parse_property_string, parse_size};
pub use params::{Param, indexed_prop, validate};
