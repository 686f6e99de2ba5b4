//! Keyset (cursor) pagination: rows are ordered by their UUIDv7 id, and a page
//! starts after the last id of the previous one, so pages stay stable while
//! rows are added.

use uuid::Uuid;

/// Which page to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Return rows whose id is greater than this (the previous page's last id).
    pub after: Option<Uuid>,
    /// Most rows to return, 1 to [`PageRequest::MAX_LIMIT`].
    pub limit: u32,
}

impl PageRequest {
    /// Page size when the client gives none.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest page a client may ask for.
    pub const MAX_LIMIT: u32 = 200;

    /// Rows to fetch: one more than the limit, to learn whether a next page exists.
    pub(crate) fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

/// One page of rows and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, in id order.
    pub items: Vec<T>,
    /// The last id of this page when more rows follow, else `None`.
    pub next_after: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows.
    pub(crate) fn from_overfetch(
        mut rows: Vec<T>,
        req: PageRequest,
        id: impl Fn(&T) -> Uuid,
    ) -> Self {
        let limit = req.limit as usize;
        let next_after = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(id)
        } else {
            None
        };
        Self {
            items: rows,
            next_after,
        }
    }

    /// Converts every item, keeping the cursor.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }
}
