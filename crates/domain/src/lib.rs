//! Tenantry's domain: the vocabulary of a multi-tenant SaaS host as types that
//! validate themselves, and the rules that can be stated without I/O.
//!
//! Nothing here talks to a database, the network or a clock; every other crate
//! builds on these types. Newtypes have a private field and a `parse()` that
//! returns an error naming the broken rule, so a value that exists is valid.

/// Declares an enum whose values have a fixed wire and database spelling,
/// with `as_str`, `Display`, `FromStr`, serde (as that spelling) and `ALL`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire and database spelling.
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

pub mod billing;
pub mod catalog;
pub mod identity;
pub mod job;
pub mod money;
pub mod node;
pub mod placement;
pub mod routing;
pub mod slug;
pub mod tenant;
pub mod validation;

pub use catalog::{
    BackupSchedule, BillingInterval, CatalogInput, DeploymentKind, DriverKind, PlanCode, PlanSpec,
    Port, PortRange, ProductSpec, Resources, SlaPercent,
};
pub use identity::{Email, Role, Scope, UserStatus};
pub use job::JobStatus;
pub use money::{Currency, Money, MoneyError};
pub use node::{NodeCapacity, NodeName, NodeStatus};
pub use placement::{Allocation, Load, NoPlacement, NodeLoad, Ratio, Resource, place};
pub use slug::{Slug, SlugError};
pub use tenant::{InvalidTransition, SubscriptionStatus, TenantSlug, TenantStatus};
pub use validation::{FieldError, ValidationErrors};
