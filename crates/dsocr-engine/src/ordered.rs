//! Results in input order: the engine finishes pages in any order; writers and batch callers
//! want them by tag (page number).

use std::collections::BTreeMap;

/// Holds results that arrived early until every earlier tag has arrived.
#[derive(Debug)]
pub struct InOrder<T> {
    next: u64,
    held: BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder { next: 0, held: BTreeMap::new() }
    }
}

impl<T> InOrder<T> {
    /// Expect tags `0, 1, 2, …`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `tag`'s item; returns the items now ready, in tag order.
    pub fn push(&mut self, tag: u64, item: T) -> Vec<(u64, T)> {
        self.held.insert(tag, item);
        let mut ready = Vec::new();
        while let Some(item) = self.held.remove(&self.next) {
            ready.push((self.next, item));
            self.next += 1;
        }
        ready
    }

    /// Items still held (waiting for an earlier tag).
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_each_item_once_every_earlier_one_is_in() {
        let mut o = InOrder::new();
        assert!(o.push(2, 'c').is_empty());
        assert!(o.push(1, 'b').is_empty());
        assert_eq!(o.push(0, 'a'), vec![(0, 'a'), (1, 'b'), (2, 'c')]);
        assert_eq!(o.push(3, 'd'), vec![(3, 'd')]);
        assert_eq!(o.held(), 0);
    }
}
