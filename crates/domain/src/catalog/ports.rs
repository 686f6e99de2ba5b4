//! Host ports for dedicated tenants: an unprivileged [`Port`] and an
//! inclusive [`PortRange`] of them.

/// A TCP port a tenant may be exposed on: 1024–65535 (unprivileged, so no
/// clash with a node's own services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(u16);

impl Port {
    /// Lowest port accepted.
    pub const MIN: u16 = 1024;

    /// Validates a port number.
    ///
    /// # Errors
    /// A message when `n` is outside 1024–65535.
    pub fn parse(n: i64) -> Result<Self, String> {
        u16::try_from(n)
            .ok()
            .filter(|p| *p >= Self::MIN)
            .map(Self)
            .ok_or_else(|| format!("must be a port between {} and 65535 (got {n})", Self::MIN))
    }

    /// The port number.
    pub fn get(&self) -> u16 {
        self.0
    }
}

/// An inclusive range of host ports, `start ≤ end`, both within 1024–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    start: Port,
    end: Port,
}

impl PortRange {
    /// Validates a range.
    ///
    /// # Errors
    /// A message when `start > end`.
    pub fn new(start: Port, end: Port) -> Result<Self, String> {
        if start > end {
            return Err(format!(
                "start ({}) must not be greater than end ({})",
                start.get(),
                end.get()
            ));
        }
        Ok(Self { start, end })
    }

    /// First port of the range.
    pub fn start(&self) -> Port {
        self.start
    }

    /// Last port of the range (inclusive).
    pub fn end(&self) -> Port {
        self.end
    }

    /// How many ports the range holds.
    pub fn len(&self) -> u32 {
        u32::from(self.end.get()) - u32::from(self.start.get()) + 1
    }

    /// Always false: a valid range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }
}
