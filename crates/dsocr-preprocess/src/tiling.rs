//! Tile-grid selection for the cropping ("Gundam") modes, as the official `dynamic_preprocess` /
//! `find_closest_aspect_ratio` (docs/model.md §3.3-3.4).
//!
//! The official code builds the candidate grids as a Python `set` and sorts it by tile count with a
//! stable sort, so grids with the same tile count keep the set's iteration order. That order only
//! matters on exact floating-point ties, but to reproduce them for any tile limit this module
//! replays CPython's tuple hash and set insertion (3.8+ xxHash tuple hash, 3.11 set probing). The
//! resulting orders for the limits 6 and 9 are checked against docs/model.md §3.4 in the tests.

/// A tile grid: `cols` tiles across (width) and `rows` tiles down (height).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileGrid {
    /// Tiles across the width.
    pub cols: usize,
    /// Tiles down the height.
    pub rows: usize,
}

impl TileGrid {
    /// The grid with a single tile: the image is not cut.
    pub const SINGLE: TileGrid = TileGrid { cols: 1, rows: 1 };

    /// Number of tiles.
    pub fn count(self) -> usize {
        self.cols * self.rows
    }

    /// Whether the image is cut into more than one tile (only then are tiles encoded).
    pub fn is_tiled(self) -> bool {
        self.cols > 1 || self.rows > 1
    }
}

/// CPython's `hash((a, b))` for small non-negative ints (whose hash is the int itself).
fn python_tuple_hash(items: &[u64]) -> u64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P5: u64 = 2_870_177_450_012_600_261;
    let mut acc = P5;
    for &lane in items {
        acc = acc.wrapping_add(lane.wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add((items.len() as u64) ^ (P5 ^ 3_527_539));
    if acc == u64::MAX { 1_546_275_796 } else { acc }
}

/// A minimal replay of CPython 3.11's `set` (open addressing, 9 linear probes, perturbation),
/// enough to know the iteration order of a set built by repeated `add`.
struct PythonSetOrder {
    table: Vec<Option<(u64, TileGrid)>>,
    fill: usize,
}

impl PythonSetOrder {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;

    fn new() -> Self {
        PythonSetOrder { table: vec![None; 8], fill: 0 }
    }

    fn slot_for(table: &[Option<(u64, TileGrid)>], hash: u64, key: TileGrid) -> (usize, bool) {
        let mask = table.len() - 1;
        let mut perturb = hash;
        let mut i = (hash as usize) & mask;
        loop {
            let probes = if i + Self::LINEAR_PROBES <= mask { Self::LINEAR_PROBES } else { 0 };
            for (j, slot) in table.iter().enumerate().skip(i).take(probes + 1) {
                match *slot {
                    None => return (j, false),
                    Some((h, k)) if h == hash && k == key => return (j, true),
                    Some(_) => {}
                }
            }
            perturb >>= Self::PERTURB_SHIFT;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb as usize)) & mask;
        }
    }

    fn add(&mut self, key: TileGrid) {
        let hash = python_tuple_hash(&[key.cols as u64, key.rows as u64]);
        let (slot, present) = Self::slot_for(&self.table, hash, key);
        if present {
            return;
        }
        self.table[slot] = Some((hash, key));
        self.fill += 1;
        let mask = self.table.len() - 1;
        if self.fill * 5 >= mask * 3 {
            // No deletions happen, so `used == fill`.
            let min_used = if self.fill > 50_000 { self.fill * 2 } else { self.fill * 4 };
            let mut size = 8;
            while size <= min_used {
                size <<= 1;
            }
            let old = std::mem::replace(&mut self.table, vec![None; size]);
            for (h, k) in old.into_iter().flatten() {
                let (slot, _) = Self::slot_for(&self.table, h, k);
                self.table[slot] = Some((h, k));
            }
        }
    }

    fn iter_order(&self) -> Vec<TileGrid> {
        self.table.iter().flatten().map(|&(_, k)| k).collect()
    }
}

/// The candidate grids in the order the official code visits them: all (cols, rows) with
/// `min_tiles ≤ cols·rows ≤ max_tiles`, in CPython set order, stably sorted by tile count.
pub fn candidate_grids(min_tiles: usize, max_tiles: usize) -> Vec<TileGrid> {
    let mut set = PythonSetOrder::new();
    for n in min_tiles..=max_tiles {
        for cols in 1..=n {
            for rows in 1..=n {
                let count = cols * rows;
                if count <= max_tiles && count >= min_tiles {
                    set.add(TileGrid { cols, rows });
                }
            }
        }
    }
    let mut order = set.iter_order();
    order.sort_by_key(|g| g.count()); // stable, like Python's sorted
    order
}

/// `find_closest_aspect_ratio`: the candidate whose cols/rows is closest to width/height; on an
/// exact tie the later candidate wins if the image area exceeds half the candidate's tiled area.
/// Returns [`TileGrid::SINGLE`] when there is no candidate.
pub fn closest_grid(width: usize, height: usize, tile_size: usize, candidates: &[TileGrid]) -> TileGrid {
    let aspect = width as f64 / height as f64;
    let area = (width * height) as f64;
    let mut best = TileGrid::SINGLE;
    let mut best_diff = f64::INFINITY;
    for &grid in candidates {
        let diff = (aspect - grid.cols as f64 / grid.rows as f64).abs();
        if diff < best_diff {
            best_diff = diff;
            best = grid;
        } else if diff == best_diff && area > 0.5 * (tile_size * tile_size * grid.count()) as f64 {
            best = grid;
        }
    }
    best
}

/// The tile grid the official code uses for an image of `width × height` in a cropping mode: no
/// tiles when both sides fit in one tile, else the closest grid among `min_tiles..=max_tiles`.
pub fn select_grid(width: usize, height: usize, tile_size: usize, min_tiles: usize, max_tiles: usize) -> TileGrid {
    if width <= tile_size && height <= tile_size {
        return TileGrid::SINGLE;
    }
    closest_grid(width, height, tile_size, &candidate_grids(min_tiles, max_tiles))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[TileGrid]) -> Vec<(usize, usize)> {
        v.iter().map(|g| (g.cols, g.rows)).collect()
    }

    #[test]
    fn tuple_hash_matches_cpython() {
        // hash((1, 2)) and hash(()) on 64-bit CPython ≥ 3.8.
        assert_eq!(python_tuple_hash(&[1, 2]) as i64, -3_550_055_125_485_641_917);
        assert_eq!(python_tuple_hash(&[]) as i64, 5_740_354_900_026_072_187);
    }

    #[test]
    fn candidate_order_matches_spec_for_6_and_9() {
        let six = [(1, 2), (2, 1), (3, 1), (1, 3), (4, 1), (1, 4), (2, 2), (1, 5), (5, 1), (6, 1), (2, 3), (1, 6), (3, 2)];
        assert_eq!(pairs(&candidate_grids(2, 6)), six);
        let nine = [
            (1, 2),
            (2, 1),
            (3, 1),
            (1, 3),
            (2, 2),
            (4, 1),
            (1, 4),
            (5, 1),
            (1, 5),
            (1, 6),
            (6, 1),
            (3, 2),
            (2, 3),
            (7, 1),
            (1, 7),
            (4, 2),
            (2, 4),
            (1, 8),
            (8, 1),
            (1, 9),
            (3, 3),
            (9, 1),
        ];
        assert_eq!(pairs(&candidate_grids(2, 9)), nine);
    }

    #[test]
    fn spec_examples() {
        assert_eq!(select_grid(1190, 1684, 640, 2, 9), TileGrid { cols: 2, rows: 3 });
        assert_eq!(select_grid(800, 600, 640, 2, 9), TileGrid { cols: 3, rows: 2 });
        // 2:1 and 3:1 tie in distance; the area rule picks the larger grid.
        assert_eq!(select_grid(1600, 640, 640, 2, 9), TileGrid { cols: 3, rows: 1 });
        assert_eq!(select_grid(640, 640, 640, 2, 9), TileGrid::SINGLE);
        assert_eq!(select_grid(300, 200, 640, 2, 9), TileGrid::SINGLE);
    }

    #[test]
    fn no_candidates_keeps_single() {
        assert_eq!(select_grid(2000, 1000, 640, 5, 4), TileGrid::SINGLE);
    }
}
