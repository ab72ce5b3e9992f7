//! The baselines the model must beat, run by `vigil eval` on the same 1 Hz windows and
//! calibrated to the same false-alarm budget: a rolling z-score against an EWMA mean and
//! variance, and a Random Cut Forest (Guha et al., ICML 2016) over shingled windows.
//!
//! Each scores one tick of one signal; turning scores into alerts (held for the debounce,
//! against a calibrated threshold) is the evaluator's, the same for every detector.

use std::collections::VecDeque;

/// Rolling z-score: |x - mean| / sd, with mean and variance as exponentially weighted
/// averages (about a 20-tick memory) and the bus resolution as the least sd.
#[derive(Clone, Debug)]
pub struct Ewma {
    alpha: f64,
    floor: f64,
    mean: f64,
    var: f64,
    seen: usize,
}

/// Ticks before an EWMA or a forest scores (their memory has to fill first).
pub const WARMUP: usize = 30;

impl Ewma {
    pub fn new(floor: f64) -> Self {
        Ewma {
            alpha: 0.05,
            floor,
            mean: 0.0,
            var: 0.0,
            seen: 0,
        }
    }

    /// Scores `x` against the state so far, then learns it.
    pub fn step(&mut self, x: f64) -> Option<f64> {
        if x.is_nan() {
            return None;
        }
        if self.seen == 0 {
            self.mean = x;
        }
        let sd = (self.var + self.floor * self.floor).sqrt();
        let z = (x - self.mean).abs() / sd;
        let d = x - self.mean;
        self.mean += self.alpha * d;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * d * d);
        self.seen += 1;
        (self.seen > WARMUP).then_some(z)
    }
}

/// A Random Cut Forest over a sliding window of the last `window` points.
#[derive(Clone, Debug)]
pub struct Forest {
    trees: Vec<Tree>,
    points: VecDeque<(u64, Vec<f64>)>,
    window: usize,
    next_id: u64,
    rng: u64,
}

impl Forest {
    pub fn new(trees: usize, window: usize, seed: u64) -> Self {
        Forest {
            trees: (0..trees).map(|_| Tree::default()).collect(),
            points: VecDeque::with_capacity(window + 1),
            window,
            next_id: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// Inserts `point`, returns its collusive displacement averaged over the trees (once
    /// the window has filled), and forgets the oldest point.
    pub fn step(&mut self, point: &[f64]) -> Option<f64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut total = 0.0;
        for tree in &mut self.trees {
            let leaf = tree.insert(id, point, &mut self.rng);
            total += tree.codisp(leaf);
        }
        self.points.push_back((id, point.to_vec()));
        if self.points.len() > self.window
            && let Some((old, p)) = self.points.pop_front()
        {
            for tree in &mut self.trees {
                tree.delete(old, &p);
            }
        }
        (self.points.len() >= self.window.min(WARMUP * 4)).then(|| total / self.trees.len() as f64)
    }
}

const NONE: usize = usize::MAX;

#[derive(Clone, Debug)]
struct Node {
    parent: usize,
    /// `NONE` for a leaf.
    left: usize,
    right: usize,
    dim: usize,
    cut: f64,
    /// Points below (a leaf counts its duplicates).
    count: usize,
    lo: Vec<f64>,
    hi: Vec<f64>,
    /// The point ids of a leaf (duplicates share a leaf).
    ids: Vec<u64>,
}

#[derive(Clone, Debug, Default)]
struct Tree {
    nodes: Vec<Node>,
    free: Vec<usize>,
    root: Option<usize>,
}

fn next_f64(state: &mut u64) -> f64 {
    // xorshift64*: a tiny, seeded generator; the forest must be reproducible.
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

impl Tree {
    fn alloc(&mut self, node: Node) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    fn leaf(&mut self, id: u64, p: &[f64], parent: usize) -> usize {
        self.alloc(Node {
            parent,
            left: NONE,
            right: NONE,
            dim: 0,
            cut: 0.0,
            count: 1,
            lo: p.to_vec(),
            hi: p.to_vec(),
            ids: vec![id],
        })
    }

    /// Inserts a point; returns its leaf.
    fn insert(&mut self, id: u64, p: &[f64], rng: &mut u64) -> usize {
        let Some(mut node) = self.root else {
            let leaf = self.leaf(id, p, NONE);
            self.root = Some(leaf);
            return leaf;
        };
        loop {
            let n = &self.nodes[node];
            let span: f64 = (0..p.len())
                .map(|d| n.hi[d].max(p[d]) - n.lo[d].min(p[d]))
                .sum();
            if span == 0.0 {
                // The same point again: a duplicate in this leaf (or below).
                if n.left == NONE {
                    // Its ancestors were counted on the way down.
                    self.nodes[node].ids.push(id);
                    self.nodes[node].count += 1;
                    return node;
                }
            }
            let mut r = next_f64(rng) * span;
            let mut dim = 0;
            for (d, &pd) in p.iter().enumerate() {
                let w = n.hi[d].max(pd) - n.lo[d].min(pd);
                if r <= w {
                    dim = d;
                    break;
                }
                r -= w;
                dim = d;
            }
            let cut = n.lo[dim].min(p[dim]) + r;
            let separates =
                (cut < n.lo[dim] && p[dim] <= cut) || (cut >= n.hi[dim] && p[dim] > cut);
            if separates || n.left == NONE && span > 0.0 {
                // A new internal node above `node`, splitting `p` off.
                let parent = n.parent;
                let (lo, hi): (Vec<f64>, Vec<f64>) = (0..p.len())
                    .map(|d| (n.lo[d].min(p[d]), n.hi[d].max(p[d])))
                    .unzip();
                let count = n.count + 1;
                let p_left = p[dim] <= cut;
                let (cut, dim) = if separates {
                    (cut, dim)
                } else {
                    // A leaf whose box the cut misses on the wrong side: cut between them.
                    let d = (0..p.len()).find(|&d| p[d] != n.lo[d]).unwrap_or(0);
                    ((p[d] + n.lo[d]) / 2.0, d)
                };
                let p_left = if separates { p_left } else { p[dim] <= cut };
                let inner = self.alloc(Node {
                    parent,
                    left: NONE,
                    right: NONE,
                    dim,
                    cut,
                    count,
                    lo,
                    hi,
                    ids: Vec::new(),
                });
                let leaf = self.leaf(id, p, inner);
                let (l, r) = if p_left { (leaf, node) } else { (node, leaf) };
                self.nodes[inner].left = l;
                self.nodes[inner].right = r;
                self.nodes[node].parent = inner;
                // `parent` and above were counted and widened on the way down.
                self.replace_child(parent, node, inner);
                return leaf;
            }
            // Descend by the node's own cut, widening its box on the way.
            let n = &mut self.nodes[node];
            for (d, &pd) in p.iter().enumerate() {
                n.lo[d] = n.lo[d].min(pd);
                n.hi[d] = n.hi[d].max(pd);
            }
            self.nodes[node].count += 1;
            let n = &self.nodes[node];
            node = if p[n.dim] <= n.cut { n.left } else { n.right };
        }
    }

    fn replace_child(&mut self, parent: usize, old: usize, new: usize) {
        if parent == NONE {
            self.root = Some(new);
        } else if self.nodes[parent].left == old {
            self.nodes[parent].left = new;
        } else {
            self.nodes[parent].right = new;
        }
    }

    fn find(&self, id: u64, p: &[f64]) -> Option<usize> {
        let mut node = self.root?;
        while self.nodes[node].left != NONE {
            let n = &self.nodes[node];
            node = if p[n.dim] <= n.cut { n.left } else { n.right };
        }
        self.nodes[node].ids.contains(&id).then_some(node)
    }

    fn delete(&mut self, id: u64, p: &[f64]) {
        let Some(leaf) = self.find(id, p) else {
            return;
        };
        let n = &mut self.nodes[leaf];
        n.ids.retain(|&i| i != id);
        if !n.ids.is_empty() {
            n.count -= 1;
            let parent = n.parent;
            self.refit(parent);
            return;
        }
        let parent = n.parent;
        self.free.push(leaf);
        if parent == NONE {
            self.root = None;
            return;
        }
        let pn = &self.nodes[parent];
        let sibling = if pn.left == leaf { pn.right } else { pn.left };
        let grand = pn.parent;
        self.nodes[sibling].parent = grand;
        self.replace_child(grand, parent, sibling);
        self.free.push(parent);
        self.refit(grand);
    }

    /// Recomputes counts and boxes from `node` up to the root.
    fn refit(&mut self, mut node: usize) {
        while node != NONE {
            let (l, r) = (self.nodes[node].left, self.nodes[node].right);
            let count = self.nodes[l].count + self.nodes[r].count;
            let dims = self.nodes[node].lo.len();
            for d in 0..dims {
                let lo = self.nodes[l].lo[d].min(self.nodes[r].lo[d]);
                let hi = self.nodes[l].hi[d].max(self.nodes[r].hi[d]);
                self.nodes[node].lo[d] = lo;
                self.nodes[node].hi[d] = hi;
            }
            self.nodes[node].count = count;
            node = self.nodes[node].parent;
        }
    }

    /// Collusive displacement of a leaf: the largest, over its ancestors, of how many
    /// points its removal would move (the sibling subtree) per point removed (its subtree).
    fn codisp(&self, leaf: usize) -> f64 {
        let mut node = leaf;
        let mut best: f64 = 0.0;
        while self.nodes[node].parent != NONE {
            let parent = &self.nodes[self.nodes[node].parent];
            let sibling = if parent.left == node {
                parent.right
            } else {
                parent.left
            };
            best = best.max(self.nodes[sibling].count as f64 / self.nodes[node].count as f64);
            node = self.nodes[node].parent;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_scores_a_step_high_and_settles_on_a_constant() {
        let mut e = Ewma::new(0.1);
        let scores: Vec<Option<f64>> = (0..60)
            .map(|i| e.step(if i < 50 { 1.0 } else { 5.0 }))
            .collect();
        assert_eq!(scores[WARMUP - 1], None);
        assert!(scores[45].unwrap() < 0.01);
        assert!(scores[50].unwrap() > 30.0, "{:?}", scores[50]);
    }

    #[test]
    fn the_forest_scores_an_outlier_above_every_inlier_and_keeps_its_window() {
        let mut f = Forest::new(20, 64, 7);
        let mut rng = 99u64;
        let mut inliers = Vec::new();
        for _ in 0..300 {
            let p = [next_f64(&mut rng), next_f64(&mut rng)];
            if let Some(s) = f.step(&p) {
                inliers.push(s);
            }
        }
        let outlier = f.step(&[8.0, 8.0]).unwrap();
        let worst = inliers.iter().cloned().fold(0.0, f64::max);
        assert!(
            outlier > worst,
            "outlier {outlier} vs inliers up to {worst}"
        );
        for tree in &f.trees {
            assert_eq!(tree.nodes[tree.root.unwrap()].count, 64);
        }
    }
}
